"""Test setup: 8 fake CPU devices (set before jax is imported) and fixtures."""

import os

from xla_flags_for_tests import xla_flags

os.environ.setdefault("XLA_FLAGS", xla_flags(8))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position


def make_lifting_arrays(num_poses: int, seed: int):
  """Raw lifting-builder arrays from procedural poses (no TFDS), 4 views."""
  from xsup.data.synthetic import cameras  # pylint: disable=g-import-not-at-top
  from xsup.data.synthetic import poses  # pylint: disable=g-import-not-at-top
  from xsup.geometry import camera  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  world = poses.sample_poses(rng, num_poses)
  rot, trans = cameras.ring_rig(np.array([0.0, 0.0, 900.0]))
  focal = np.array(cameras.H36M_LIKE.focal, np.float32)
  center = np.array(cameras.H36M_LIKE.center, np.float32)
  kp2d, kp3d = [], []
  for v in range(len(rot)):
    cam = np.asarray(camera.world_to_camera(world, rot[v], trans[v]))
    kp3d.append(cam / 1000.0)
    kp2d.append(np.asarray(camera.project(cam, focal, center)))
  n = num_poses * len(rot)
  return {
      "keypoints_2d": np.concatenate(kp2d).astype(np.float32),
      "keypoints_3d": np.concatenate(kp3d).astype(np.float32),
      "focal": np.tile(focal, (n, 1)),
      "center": np.tile(center, (n, 1)),
      "action": np.array(["Walking", "Sitting"] * (n // 2) + ["Walking"] *
                         (n % 2)),
  }


@pytest.fixture(scope="session")
def lifting_arrays():
  """(train, test) prepared lifting arrays, small."""
  from xsup.data import lifting  # pylint: disable=g-import-not-at-top
  return (lifting.prepare(make_lifting_arrays(64, 0)),
          lifting.prepare(make_lifting_arrays(16, 1)))
