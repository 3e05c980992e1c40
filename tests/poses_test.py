"""Tests of the procedural H36M-17 pose sampler."""

import numpy as np
import pytest

from xsup import skeleton
from xsup.data.synthetic import poses

H = skeleton.H36M17
UP = np.array([0.0, 0.0, 1.0])


def _forward(joints):
  """Unit horizontal forward direction cross(left_hip - right_hip, up)."""
  left = joints[:, H.index("left_hip")] - joints[:, H.index("right_hip")]
  fwd = np.cross(left, UP)
  return fwd / np.linalg.norm(fwd, axis=-1, keepdims=True)


def _angle_deg(u, v):
  cos = np.sum(u * v, -1) / (np.linalg.norm(u, axis=-1) *
                             np.linalg.norm(v, axis=-1))
  return np.rad2deg(np.arccos(np.clip(cos, -1, 1)))


@pytest.fixture(scope="module")
def sample():
  joints, action = poses.sample_poses_and_actions(np.random.default_rng(0),
                                                  3000)
  return joints.astype(np.float64), action


def test_shape_dtype_determinism():
  a = poses.sample_poses(np.random.default_rng(7), 16)
  b = poses.sample_poses(np.random.default_rng(7), 16)
  c = poses.sample_poses(np.random.default_rng(8), 16)
  assert a.shape == (16, 17, 3) and a.dtype == np.float32
  np.testing.assert_array_equal(a, b)
  assert np.abs(a - c).max() > 10.0
  assert np.all(np.isfinite(a))


def test_h36m18_appends_thorax_between_shoulders():
  p18 = poses.sample_poses_h36m18(np.random.default_rng(3), 8)
  p17 = poses.sample_poses(np.random.default_rng(3), 8)
  assert p18.shape == (8, 18, 3) and p18.dtype == np.float32
  np.testing.assert_allclose(p18[:, :17], p17, atol=1e-4)
  np.testing.assert_allclose(p18[:, 17], 0.5 * (p17[:, 11] + p17[:, 14]),
                             atol=1e-3)


def test_bone_lengths_plausible_and_symmetric(sample):
  joints, _ = sample
  mean = poses.mean_bone_lengths_mm()
  np.testing.assert_allclose(mean[[1, 2, 3, 12, 13]],
                             [132.9, 442.9, 454.2, 278.9, 251.7])
  lengths = np.linalg.norm(H.bone_vectors(joints), axis=-1)
  ratio = lengths[:, 1:] / mean[1:]
  assert ratio.min() > 0.55 and ratio.max() < 1.6
  # The body size and per-bone factors really vary.
  assert 0.04 < np.std(ratio[:, 1]) < 0.15
  for (rc, _), (lc, _) in skeleton.limb_pairs(H):
    np.testing.assert_allclose(lengths[:, rc], lengths[:, lc], rtol=1e-4)
  np.testing.assert_allclose(lengths[:, 1], lengths[:, 4], rtol=1e-4)
  np.testing.assert_allclose(lengths[:, 11], lengths[:, 14], rtol=1e-4)


@pytest.mark.parametrize("side", ["left", "right"])
def test_knees_bend_forward(sample, side):
  joints, _ = sample
  hip = joints[:, H.index(f"{side}_hip")]
  knee = joints[:, H.index(f"{side}_knee")]
  ankle = joints[:, H.index(f"{side}_ankle")]
  thigh, shin = knee - hip, ankle - knee
  bent = _angle_deg(thigh, shin) > 20.0
  assert bent.mean() > 0.2
  # The hinge axis (thigh x shin) points to the subject's left.
  left = joints[:, H.index("left_hip")] - joints[:, H.index("right_hip")]
  hinge = np.sum(np.cross(thigh, shin) * left, -1)
  assert (hinge[bent] > 0).mean() > 0.95
  # With the thigh below the hip, the knee lies in front of the hip-ankle line.
  line = ankle - hip
  t = np.sum(thigh * line, -1) / np.sum(line * line, -1)
  offset = knee - (hip + t[:, None] * line)
  in_front = np.sum(offset * _forward(joints), -1) > 0
  below = knee[:, 2] < hip[:, 2] - 100.0
  assert (bent & below).sum() > 100
  assert in_front[bent & below].mean() > 0.95


@pytest.mark.parametrize("side", ["left", "right"])
def test_elbows_within_range_and_anatomical(sample, side):
  joints, _ = sample
  shoulder = joints[:, H.index(f"{side}_shoulder")]
  elbow = joints[:, H.index(f"{side}_elbow")]
  wrist = joints[:, H.index(f"{side}_wrist")]
  upper, fore = elbow - shoulder, wrist - elbow
  flexion = _angle_deg(upper, fore)
  lo, hi = poses.DOF_LIMITS_DEG["elbow_flexion"]
  assert flexion.min() >= lo - 0.5 and flexion.max() <= hi + 0.5
  assert flexion.max() > 100.0
  # Arm hanging along the torso: a bent forearm points to the torso's front.
  torso_up = joints[:, H.index("thorax")] - joints[:, H.index("spine")]
  torso_left = (joints[:, H.index("left_shoulder")] -
                joints[:, H.index("right_shoulder")])
  torso_fwd = np.cross(torso_left, torso_up)
  hanging = _angle_deg(upper, -torso_up) < 25.0
  sel = hanging & (flexion > 30.0)
  assert sel.sum() > 50
  assert (np.sum(fore * torso_fwd, -1)[sel] > 0).mean() > 0.9


def test_yaw_coverage():
  joints = poses.sample_poses(np.random.default_rng(1), 2000).astype(float)
  fwd = _forward(joints)
  yaw = np.rad2deg(np.arctan2(fwd[:, 1], fwd[:, 0]))
  counts, _ = np.histogram(yaw, bins=12, range=(-180, 180))
  assert counts.min() > 2000 / 12 * 0.6
  narrow = poses.sample_poses(np.random.default_rng(1), 500,
                              yaw_range_deg=30.0).astype(float)
  fwd = _forward(narrow)
  yaw = np.rad2deg(np.arctan2(fwd[:, 1], fwd[:, 0]))
  # Pelvis pitch combined with roll tilts the hip line by a few degrees.
  assert np.abs(yaw).max() <= 36.0
  assert np.abs(yaw).max() > 25.0


def test_standing_on_the_ground(sample):
  joints, action = sample
  standing = action == poses.ACTIONS.index("standing")
  assert standing.sum() > 200
  feet = joints[standing][:, [H.index("left_ankle"), H.index("right_ankle")],
                          2]
  assert np.all(feet.min(-1) < 80.0) and np.all(feet.min(-1) > 20.0)
  pelvis = joints[standing][:, 0]
  assert 900.0 < pelvis[:, 2].mean() < 1000.0
  np.testing.assert_allclose(pelvis[:, :2], 0.0, atol=1e-3)
  # Nothing ever goes below the floor.
  assert joints[..., 2].min() > 0.0


def test_zero_angle_scale_is_rest_pose():
  joints = poses.sample_poses(np.random.default_rng(2), 4, angle_scale=0.0,
                              yaw_range_deg=0.0, bone_scale_std=0.0)
  rest = joints - joints[:, :1]
  # Legs straight down, arms hanging, spine up.
  for a, b in ((1, 3), (4, 6), (11, 13), (14, 16)):
    np.testing.assert_allclose(rest[:, a, :2], rest[:, b, :2], atol=1e-2)
  assert np.all(rest[:, 10, 2] > 600.0)
  np.testing.assert_allclose(rest[:, 1, 1], -rest[:, 4, 1], atol=1e-3)
  # Left is +y when facing +x.
  assert np.all(rest[:, 4, 1] > 100.0)


def test_forward_kinematics_hand_computed():
  lengths = poses.mean_bone_lengths_mm()[None].astype(np.float64)
  # Knee 90 deg, facing +y: the shin points backward (-y), the thigh down.
  p = poses.forward_kinematics({"left_knee_flexion": np.array([90.0])},
                               lengths, np.array([np.pi / 2]))[0]
  np.testing.assert_allclose(p[6] - p[5], [0.0, -454.2, 0.0], atol=1e-2)
  np.testing.assert_allclose(p[5] - p[4], [0.0, 0.0, -442.9], atol=1e-2)
  # Right shoulder flexion 90: arm straight forward; abduction 90: outward.
  p = poses.forward_kinematics(
      {"right_shoulder_flexion": np.array([90.0, 0.0]),
       "right_shoulder_abduction": np.array([0.0, 90.0])},
      np.repeat(lengths, 2, 0), np.zeros(2))
  np.testing.assert_allclose(p[0, 15] - p[0, 14], [278.9, 0, 0], atol=1e-2)
  np.testing.assert_allclose(p[1, 15] - p[1, 14], [0, -278.9, 0], atol=1e-2)
  # Elbow flexion 90 with the arm down: forearm forward.
  p = poses.forward_kinematics({"left_elbow_flexion": np.array([90.0])},
                               lengths, np.zeros(1))[0]
  np.testing.assert_allclose(p[13] - p[12], [251.7, 0, 0], atol=1e-2)
  with pytest.raises(ValueError, match="unknown angle names"):
    poses.forward_kinematics({"tail_wag": np.zeros(1)}, lengths, np.zeros(1))


def test_actions_are_mixed(sample):
  _, action = sample
  counts = np.bincount(action, minlength=len(poses.ACTIONS))
  np.testing.assert_allclose(counts / counts.sum(), poses.ACTION_PROBS,
                             atol=0.03)
