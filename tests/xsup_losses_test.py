"""Tests of xsup.losses.xsup."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xsup import skeleton as skel
from xsup.losses import xsup as losses

H18 = skel.H36M18


# ---------------------------------------------------------------------------
# Masks.

RENDERED = np.array([0.05, 0.5, 0.9, 0.2], np.float32).reshape(1, 2, 2, 1)
MASK = np.array([1.0, 0.0, 1.0, 1.0], np.float32).reshape(1, 2, 2, 1)
SQ = np.array([0.95**2, 0.5**2, 0.1**2, 0.8**2])


def test_mask_loss_plain_and_weighted():
  np.testing.assert_allclose(
      losses.mask_reconstruction_loss(RENDERED, MASK), SQ.mean(), rtol=1e-6)
  w = np.array([1.0, 2.0, 3.0, 4.0], np.float32).reshape(1, 2, 2, 1)
  np.testing.assert_allclose(
      losses.mask_reconstruction_loss(RENDERED, MASK, weights=w),
      np.mean(SQ * w.ravel()), rtol=1e-6)


def test_mask_loss_clip_counts_only_selected_pixels():
  # Pixels above 0.1: 0.5, 0.9, 0.2 (the 0.05 one is dropped).
  keep = np.array([0, 1, 1, 1], bool)
  got = losses.mask_reconstruction_loss(RENDERED, MASK, use_clip=True)
  np.testing.assert_allclose(got, SQ[keep].mean(), rtol=1e-6)
  w = np.array([1.0, 2.0, 3.0, 4.0], np.float32).reshape(1, 2, 2, 1)
  got_w = losses.mask_reconstruction_loss(RENDERED, MASK, weights=w,
                                          use_clip=True)
  np.testing.assert_allclose(got_w, np.sum((SQ * w.ravel())[keep]) / 3.0,
                             rtol=1e-6)
  # Nothing selected: zero, not NaN.
  zero = losses.mask_reconstruction_loss(RENDERED * 0.0, MASK, use_clip=True)
  assert float(zero) == 0.0


def test_mask_loss_reference_clip_value():
  keep = np.array([0, 1, 1, 1], np.float32)
  got = losses.mask_reconstruction_loss(RENDERED, MASK, use_clip=True,
                                        reference_clip=True)
  # Scalar MSE times the fraction of pixels above 0.1.
  np.testing.assert_allclose(got, SQ.mean() * keep.mean(), rtol=1e-6)
  w = np.array([1.0, 2.0, 3.0, 4.0], np.float32).reshape(1, 2, 2, 1)
  got_w = losses.mask_reconstruction_loss(RENDERED, MASK, weights=w,
                                          use_clip=True, reference_clip=True)
  np.testing.assert_allclose(got_w, np.mean(SQ * keep * w.ravel()),
                             rtol=1e-6)


def test_mask_loss_clip_gradient_only_on_selected_pixels():
  grad = jax.grad(lambda r: losses.mask_reconstruction_loss(
      r, MASK, use_clip=True))(jnp.asarray(RENDERED))
  expected = 2.0 * (RENDERED - MASK) / 3.0
  expected.ravel()[0] = 0.0
  np.testing.assert_allclose(grad, expected, rtol=1e-5)


def test_physique_loss_and_shape_check():
  np.testing.assert_allclose(
      losses.physique_reconstruction_loss(RENDERED, MASK), SQ.mean(),
      rtol=1e-6)
  with pytest.raises(ValueError, match="same shape"):
    losses.physique_reconstruction_loss(RENDERED, MASK[..., 0])


# ---------------------------------------------------------------------------
# Synthetic supervision.


def test_synthetic_supervision_picks_best_hypothesis():
  rng = np.random.default_rng(0)
  target = rng.normal(size=(2, 5, 3)).astype(np.float32)
  offsets = np.array([0.3, 0.1, 0.2], np.float32)   # hypothesis 1 is best
  pred = target[:, None] + offsets[None, :, None, None]
  per_hyp = losses.synthetic_supervision_loss(pred, target,
                                              per_hypothesis=True)
  np.testing.assert_allclose(per_hyp, offsets**2, rtol=1e-5)
  np.testing.assert_allclose(losses.synthetic_supervision_loss(pred, target),
                             0.01, rtol=1e-5)
  # The gradient reaches only the winning hypothesis.
  grad = jax.grad(losses.synthetic_supervision_loss)(jnp.asarray(pred),
                                                     target)
  assert np.all(grad[:, [0, 2]] == 0.0) and np.all(grad[:, 1] != 0.0)


def test_synthetic_supervision_valid_mask():
  target = np.zeros((1, 2, 3), np.float32)
  pred = np.zeros((1, 1, 2, 3), np.float32)
  pred[0, 0, 1] = 10.0                   # only the invalid joint is wrong
  valid = np.array([[1.0, 0.0]], np.float32)
  assert float(losses.synthetic_supervision_loss(pred, target, valid)) == 0.0
  np.testing.assert_allclose(
      losses.synthetic_supervision_loss(pred, target), 50.0)
  with pytest.raises(ValueError, match="pred"):
    losses.synthetic_supervision_loss(pred[0], target)


# ---------------------------------------------------------------------------
# Symmetry.


def _symmetric_pose():
  """An H36M-18 pose (mm) mirror-symmetric in x, thorax/pelvis at centres."""
  j = np.zeros((18, 3), np.float32)
  half = {  # right-side joints; left = x mirrored.
      "hip": (-130.0, 0.0, 10.0), "knee": (-150.0, -440.0, 30.0),
      "ankle": (-140.0, -880.0, -20.0), "shoulder": (-170.0, 520.0, 0.0),
      "elbow": (-260.0, 270.0, 40.0), "wrist": (-300.0, 30.0, 120.0)}
  for name, (x, y, z) in half.items():
    j[H18.index("right_" + name)] = (x, y, z)
    j[H18.index("left_" + name)] = (-x, y, z)
  j[H18.index("pelvis")] = (0.0, 0.0, 10.0)
  j[H18.index("torso")] = (0.0, 250.0, 0.0)
  j[H18.index("thorax")] = (0.0, 520.0, 0.0)
  j[H18.index("neck")] = (0.0, 600.0, 0.0)
  j[H18.index("nose")] = (0.0, 650.0, 80.0)
  j[H18.index("head")] = (0.0, 720.0, 0.0)
  return j


def test_symmetry_losses_zero_on_symmetric_pose():
  pose = _symmetric_pose()[None, None]              # [1, 1, 18, 3]
  assert float(losses.bone_symmetry_loss(pose)) < 1e-12
  assert float(losses.keypoint_symmetry_loss(pose)) < 1e-12


def test_bone_symmetry_lengthened_limb():
  pose = _symmetric_pose()
  long = pose.copy()
  # Move the right wrist 100 mm further along the right forearm.
  we, el = H18.index("right_wrist"), H18.index("right_elbow")
  u = (pose[we] - pose[el]) / np.linalg.norm(pose[we] - pose[el])
  long[we] = pose[we] + 100.0 * u
  joints = np.stack([long, pose])[None]            # [1, 2, 18, 3]
  per_hyp = losses.bone_symmetry_loss(joints, per_hypothesis=True)
  # 4 limb pairs, one differs by 0.1 m.
  np.testing.assert_allclose(per_hyp, [0.1**2 / 4, 0.0], atol=1e-8)
  assert float(losses.bone_symmetry_loss(joints)) < 1e-12
  # Keypoint term unaffected (the wrist is not a centre joint).
  assert float(losses.keypoint_symmetry_loss(long[None, None])) < 1e-12


def test_bone_symmetry_reference_pairs():
  pose = _symmetric_pose()
  joints = pose[None, None]
  lengths = lambda a, b: np.linalg.norm(pose[H18.index(a)] -
                                        pose[H18.index(b)]) * 1e-3
  diffs = []
  for side in ("right", "left"):
    diffs.append(lengths(side + "_wrist", side + "_elbow")
                 - lengths(side + "_elbow", side + "_shoulder"))
    diffs.append(lengths(side + "_ankle", side + "_knee")
                 - lengths(side + "_knee", side + "_hip"))
  np.testing.assert_allclose(
      losses.bone_symmetry_loss(joints, reference_pairs=True),
      np.mean(np.square(diffs)), rtol=1e-5)


def test_keypoint_symmetry_hand_value_and_combination():
  pose = _symmetric_pose()
  moved = pose.copy()
  moved[H18.index("thorax")] += (30.0, 0.0, 40.0)  # 0.03 m, 0.04 m off
  per_hyp = losses.keypoint_symmetry_loss(
      np.stack([moved, pose])[None], per_hypothesis=True)
  # mean over 2 centres x 3 coordinates of squared offsets in metres.
  np.testing.assert_allclose(per_hyp, [(0.03**2 + 0.04**2) / 6, 0.0],
                             rtol=1e-5, atol=1e-10)
  joints = np.stack([moved, pose])[None]
  combined = losses.symmetry_loss(joints, bone_weight=0.1,
                                  keypoint_weight=0.1)
  assert float(combined) < 1e-12
  with pytest.raises(ValueError, match="18"):
    losses.keypoint_symmetry_loss(np.zeros((1, 1, 17, 3)))


# ---------------------------------------------------------------------------
# LSGAN.


def test_lsgan_generator_hand_value():
  fake = np.array([[[0.5], [0.9], [-1.0]],
                   [[2.0], [0.0], [1.5]]], np.float32)
  # Sample 0: min(0.25, 0.01, 4) = 0.01; sample 1: min(1, 1, 0.25) = 0.25.
  np.testing.assert_allclose(losses.lsgan_generator_loss(fake),
                             (0.01 + 0.25) / 2, rtol=1e-6)
  np.testing.assert_allclose(
      losses.lsgan_generator_loss(np.array([[0.5], [2.0]])),
      (0.25 + 1.0) / 2, rtol=1e-6)


def test_lsgan_discriminator_hand_value():
  real = np.array([[0.5], [1.2]], np.float32)
  fake = np.array([[[0.5], [0.9], [-0.2]],
                   [[2.0], [0.3], [1.5]]], np.float32)
  # Real: 0.5 * mean(0.25, 0.04); fake: 0.5 * mean(min(.25,.81,.04),
  # min(4, .09, 2.25)).
  expected = 0.5 * (0.25 + 0.04) / 2 + 0.5 * (0.04 + 0.09) / 2
  np.testing.assert_allclose(losses.lsgan_discriminator_loss(real, fake),
                             expected, rtol=1e-6)
  with pytest.raises(ValueError, match="scores_fake"):
    losses.lsgan_discriminator_loss(real, fake[..., 0][..., None, None])


# ---------------------------------------------------------------------------
# Discriminator space and augmentation.


def test_random_vertical_rotation_keeps_up_and_bone_lengths():
  poses = np.stack([_symmetric_pose(), _symmetric_pose() * 0.9]) * 1e-3
  key = jax.random.PRNGKey(3)
  rotated = np.asarray(losses.random_vertical_rotation(
      key, jnp.asarray(poses), max_angle_deg=45.0, up_axis="y"))
  np.testing.assert_allclose(rotated[..., 1], poses[..., 1], atol=1e-6)
  bones = lambda p: np.linalg.norm(H18.bone_vectors(p), axis=-1)
  np.testing.assert_allclose(bones(rotated), bones(poses), atol=1e-6)
  # The rotation angle (about y) is within +-45 degrees and not zero.
  x, z = poses[:, H18.index("right_hip")][:, [0, 2]].T
  xr, zr = rotated[:, H18.index("right_hip")][:, [0, 2]].T
  angle = np.abs(np.angle((xr + 1j * zr) / (x + 1j * z)))
  assert np.all(angle <= np.deg2rad(45.0) + 1e-5) and np.all(angle > 0)
  rotated_z = losses.random_vertical_rotation(key, jnp.asarray(poses),
                                              up_axis="z")
  np.testing.assert_allclose(rotated_z[..., 2], poses[..., 2], atol=1e-6)


def test_to_discriminator_space():
  joints = np.zeros((1, 18, 3), np.float32)
  joints[0, 0] = (0.1, 0.2, 0.0)                  # root
  joints[0, 3] = (0.6, -0.3, 0.25)
  out = np.asarray(losses.to_discriminator_space(joints, rect_3d_mm=2000.0,
                                                 patch_width=256))
  pixel_mm = 2000.0 / 256
  xy = 0.5 * 255 * pixel_mm * 1e-3               # metres per x/y unit
  z = 255 * pixel_mm * 1e-3                      # metres per z unit
  np.testing.assert_allclose(out[0, 0], 0.0, atol=1e-7)
  np.testing.assert_allclose(out[0, 3], [0.5 * xy, -0.5 * xy, 0.25 * z],
                             rtol=1e-5)
  mm = np.asarray(losses.to_discriminator_space(joints * 1000.0, units="mm"))
  np.testing.assert_allclose(mm[0, 3], [0.5, -0.5, 0.25], rtol=1e-5)
  with pytest.raises(ValueError, match="units"):
    losses.to_discriminator_space(joints, units="cm")
