"""Tests of the SMPL pose/shape sampler by per-joint ranges."""

import numpy as np
import pytest

from xsup.data.synthetic import smpl_poses


@pytest.fixture(scope="module")
def sample():
  return np.rad2deg(smpl_poses.sample_smpl_poses(
      np.random.default_rng(0), 4000).astype(np.float64))


def test_shape_dtype_determinism():
  a = smpl_poses.sample_smpl_poses(np.random.default_rng(3), 7)
  b = smpl_poses.sample_smpl_poses(np.random.default_rng(3), 7)
  assert a.shape == (7, 72) and a.dtype == np.float32
  np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match="variant"):
    smpl_poses.pose_ranges_deg("wild")


def test_components_stay_in_their_ranges(sample):
  table = smpl_poses.pose_ranges_deg()
  above, below, centre = table[:, 0], table[:, 1], table[:, 2]
  lo, hi = centre - below - 1e-3, centre + above + 1e-3
  inside = (sample >= lo) & (sample <= hi)
  dropped = sample == 0.0
  assert np.all(inside | dropped)
  # Joints without a range never move; e.g. the wrists and hands.
  fixed = (above == 0) & (below == 0) & (centre == 0)
  assert fixed.sum() == 72 - 35
  np.testing.assert_array_equal(sample[:, fixed], 0.0)
  # Knees only bend one way; the left elbow only to negative y.
  assert sample[:, 3 * 4].min() >= 0.0 and sample[:, 3 * 4].max() > 60.0
  assert sample[:, 3 * 18 + 1].max() <= 0.0
  # The left shoulder's z is centred at -60 deg.
  kept = sample[:, 3 * 16 + 2][sample[:, 3 * 16 + 2] != 0]
  assert kept.min() >= -90.0 - 1e-3 and kept.max() <= 90.0 + 1e-3
  assert np.mean(kept < -60.0) == pytest.approx(0.5, abs=0.05)


def test_root_always_drawn_and_drop_rate(sample):
  root = sample[:, :3]
  assert np.all(root != 0.0)
  assert np.abs(root[:, [0, 2]]).max() <= 5.0 + 1e-3
  assert np.abs(root[:, 1]).max() > 150.0
  head_y = sample[:, 3 * 15 + 1]
  assert np.mean(head_y == 0.0) == pytest.approx(0.4, abs=0.04)
  kept = head_y[head_y != 0.0]
  assert np.mean(kept > 0) == pytest.approx(0.5, abs=0.04)
  # Half-normal with std = width / 1.96, clipped: ~5 % at the limit, and
  # std of the clipped magnitude = 0.553 sigma.
  assert np.mean(np.abs(kept) >= 50.0 - 1e-3) == pytest.approx(0.05, abs=0.02)
  assert np.std(np.abs(kept)) == pytest.approx(0.553 * 50.0 / 1.96, rel=0.06)


def test_shared_across_batch_reproduces_batch_level_choices():
  poses = smpl_poses.sample_smpl_poses(np.random.default_rng(1), 200,
                                       shared_across_batch=True)
  centre = smpl_poses.pose_ranges_deg()[:, 2]
  for k in range(3, 72):
    if centre[k] == 0:
      # One side for the whole batch: all values share a sign (or are 0).
      assert len(set(np.sign(poses[:, k]).tolist())) == 1, k
  # A component is dropped for all poses or for none.
  head_y = poses[:, 3 * 15 + 1]
  assert np.all(head_y == 0) or np.all(head_y != 0)


def test_implausible_variant_bends_knees_backward():
  poses = np.rad2deg(smpl_poses.sample_smpl_poses(
      np.random.default_rng(2), 2000, variant="implausible"))
  knee = poses[:, 3 * 4]
  assert knee.min() < -30.0 and knee.max() <= 10.0 + 1e-3


def test_betas():
  betas = smpl_poses.sample_smpl_betas(np.random.default_rng(0), 5000)
  assert betas.shape == (5000, 10) and betas.dtype == np.float32
  assert np.abs(betas).max() <= 1.5 + 1e-6
  assert abs(betas.mean()) < 0.02
  assert betas.std() == pytest.approx(0.74, abs=0.03)
  shared = smpl_poses.sample_smpl_betas(np.random.default_rng(0), 50,
                                        shared_across_batch=True)
  assert len(set(np.sign(shared).ravel().tolist())) == 1


def test_sampled_poses_through_a_random_body_model():
  from xsup.models import smpl  # pylint: disable=g-import-not-at-top
  model = smpl.model_from_arrays(smpl.random_model_arrays(48, seed=0))
  reg = smpl.random_h36m_regressor(48)
  rng = np.random.default_rng(5)
  pose = smpl_poses.sample_smpl_poses(rng, 8)
  betas = smpl_poses.sample_smpl_betas(rng, 8)
  joints = np.asarray(smpl.h36m18_from_params(model, reg, pose, betas))
  assert joints.shape == (8, 18, 3) and np.all(np.isfinite(joints))
  np.testing.assert_allclose(joints[:, 0], 0.0, atol=1e-6)
  # Legs below the pelvis in the z-up frame for these mostly upright poses.
  assert np.mean(joints[:, 3, 2] < -300.0) > 0.7
