"""`synthetic_lifting`: 2D/3D keypoint pairs of procedural poses (no download).

Each pose of `xsup.data.synthetic.poses.sample_poses` is placed at a random
position near the origin of a capture area and seen by 4 cameras of an
H36M-like ring rig (`cameras.ring_rig`, `cameras.H36M_LIKE` intrinsics) with
jittered azimuth, distance (4500-5500 mm) and height (1200-1800 mm), all
looking at a point above the capture area's centre; consecutive poses
(`poses_per_rig`) share one rig, like the fixed cameras of a capture
session. The 2D keypoints are the exact projections, plus optional Gaussian
pixel noise like a 2D detector's.

Features (shared schema of the lifting builders, `lifting_features`):
  keypoints_2d: `[17, 2]` float32 pixels (H36M-17).
  keypoints_3d: `[17, 3]` float32 camera frame, metres (not root-centred).
  focal, center: `[2]` float32 pixels.
  subject: "synth_train" / "synth_test".
  action: the action-prior category of the pose (`poses.ACTIONS`).
  camera: int32 camera index 0..3.
  frame: int32 index of the pose in its split.

Configs: `default` (12000 train / 1500 test poses, x 4 cameras), `noisy`
(the same with 5 px 2D noise), `tiny` (100 / 25 poses, for tests).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Tuple

import numpy as np
import tensorflow_datasets as tfds

from xsup.data.builders import lifting_features
from xsup.data.synthetic import cameras
from xsup.data.synthetic import poses
from xsup.geometry import camera as camera_lib

NUM_CAMERAS = 4
_BASE_AZIMUTHS_DEG = (45.0, 135.0, 225.0, 315.0)


@dataclasses.dataclass
class SyntheticLiftingConfig(tfds.core.BuilderConfig):
  """Sizes, seeds and noise of one variant.

  Attributes:
    num_train: poses in `train` (each gives NUM_CAMERAS examples).
    num_test: poses in `test`.
    noise_px: std of the Gaussian noise added to the 2D keypoints (pixels).
    train_seed, test_seed: seeds of the two splits (must differ).
    position_range_mm: the pelvis is placed uniformly in
      [-range, range]^2 on the ground plane.
    azimuth_jitter_deg: each camera's azimuth is jittered uniformly by +-this.
    distance_range_mm, height_range_mm: per-pose rig distance and camera
      height, uniform in these ranges.
    target_height_range_mm: height of the rig's look-at point.
    poses_per_rig: consecutive poses share one jittered rig.
  """
  num_train: int = 12000
  num_test: int = 1500
  noise_px: float = 0.0
  train_seed: int = 0
  test_seed: int = 1
  position_range_mm: float = 1000.0
  azimuth_jitter_deg: float = 10.0
  distance_range_mm: Tuple[float, float] = (4500.0, 5500.0)
  height_range_mm: Tuple[float, float] = (1200.0, 1800.0)
  target_height_range_mm: Tuple[float, float] = (800.0, 1100.0)
  poses_per_rig: int = 50


def render_split(num: int, seed: int, config: SyntheticLiftingConfig
                 ) -> dict:
  """All examples of one split as arrays (poses x cameras, pose-major).

  Returns:
    dict with `keypoints_2d [num, V, 17, 2]` px, `keypoints_3d
    [num, V, 17, 3]` camera metres, `focal [2]`, `center [2]`, `action [num]`
    int32 index into `poses.ACTIONS`.
  """
  rng = np.random.default_rng(seed)
  world, action = poses.sample_poses_and_actions(rng, num)
  world = world.astype(np.float64)
  r = config.position_range_mm
  world[..., :2] += rng.uniform(-r, r, (num, 1, 2))
  # One rig per block of `poses_per_rig` poses (a "session" of fixed cameras).
  num_rigs = -(-num // config.poses_per_rig)
  azimuths = np.asarray(_BASE_AZIMUTHS_DEG) + rng.uniform(
      -config.azimuth_jitter_deg, config.azimuth_jitter_deg,
      (num_rigs, NUM_CAMERAS))
  distance = rng.uniform(*config.distance_range_mm, num_rigs)
  height = rng.uniform(*config.height_range_mm, num_rigs)
  target_z = rng.uniform(*config.target_height_range_mm, num_rigs)
  rig_rot = np.zeros((num_rigs, NUM_CAMERAS, 3, 3), np.float32)
  rig_trans = np.zeros((num_rigs, NUM_CAMERAS, 3), np.float32)
  for k in range(num_rigs):
    rig_rot[k], rig_trans[k] = cameras.ring_rig(
        np.array([0.0, 0.0, target_z[k]]), azimuths[k], distance=distance[k],
        height=height[k])
  rig = np.arange(num) // config.poses_per_rig
  rot, trans = rig_rot[rig], rig_trans[rig]
  intr = cameras.H36M_LIKE
  focal = np.asarray(intr.focal, np.float32)
  center = np.asarray(intr.center, np.float32)
  points = np.broadcast_to(world[:, None].astype(np.float32),
                           (num, NUM_CAMERAS, 17, 3))
  cam = np.asarray(camera_lib.world_to_camera(points, rot, trans), np.float32)
  if num and cam[..., 2].min() <= 100.0:
    raise ValueError("synthetic_lifting: a joint lies behind a camera; "
                     "check distance_range_mm / position_range_mm")
  kp2d = np.asarray(camera_lib.project(cam, focal, center), np.float32)
  if config.noise_px > 0:
    kp2d = kp2d + rng.normal(0.0, config.noise_px, kp2d.shape).astype(
        np.float32)
  return {
      "keypoints_2d": kp2d,
      "keypoints_3d": cam / np.float32(1000.0),
      "focal": focal,
      "center": center,
      "action": action,
  }


class SyntheticLifting(tfds.core.GeneratorBasedBuilder):
  """Procedural 2D-3D lifting pairs seen by an H36M-like rig."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      SyntheticLiftingConfig(
          name="default", description="12000/1500 poses x 4 views, exact 2D."),
      SyntheticLiftingConfig(
          name="noisy", noise_px=5.0,
          description="As default, 2D keypoints with 5 px Gaussian noise."),
      SyntheticLiftingConfig(
          name="tiny", num_train=100, num_test=25,
          description="100/25 poses x 4 views, for tests."),
  ]
  DEFAULT_CONFIG_NAME = "default"

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=lifting_features.features(),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    cfg = self.builder_config
    if cfg.train_seed == cfg.test_seed:
      raise ValueError(f"synthetic_lifting/{cfg.name}: train_seed and "
                       "test_seed must differ")
    return {
        "train": self._generate_examples("train", cfg.num_train,
                                         cfg.train_seed),
        "test": self._generate_examples("test", cfg.num_test, cfg.test_seed),
    }

  def _generate_examples(self, split: str, num: int, seed: int
                         ) -> Iterator[Tuple[int, dict]]:
    data = render_split(num, seed, self.builder_config)
    subject = f"synth_{split}"
    for i in range(num):
      action = poses.ACTIONS[int(data["action"][i])]
      for v in range(NUM_CAMERAS):
        yield i * NUM_CAMERAS + v, {
            "keypoints_2d": data["keypoints_2d"][i, v],
            "keypoints_3d": data["keypoints_3d"][i, v],
            "focal": data["focal"],
            "center": data["center"],
            "subject": subject,
            "action": action,
            "camera": v,
            "frame": i,
        }


Builder = SyntheticLifting
