"""Feature specification shared by the image builders.

Multi-view samples (`h36m_images`, `mpi_inf_3dhp_images`, and the synthetic
multi-view builder) all carry these features; V is the number of views, S
the patch side, J = 18 (`h36m18` layout):

  image             [V, S, S, 3] uint8   person-centred RGB patches
  mask              [V, S, S, 1] uint8   person mask patches, 0..255
  joints_3d_camera  [V, J, 3] float32    camera-frame joints, mm
  joints_2d_patch   [V, J, 2] float32    joints in patch pixels
  affine            [V, 2, 3] float32    image pixels -> patch pixels
  rot               [V, 3, 3] float32    world -> camera rotation
  trans             [V, 3]    float32    mm; x_cam = rot x_world + trans
  focal             [V, 2]    float32    (fx, fy) pixels
  center            [V, 2]    float32    (cx, cy) pixels
  subject           string               e.g. "S1" (3DHP test: "TS1")
  action            string
  frame             int32                0-based frame index

`joints_2d_patch` is the pinhole projection of `joints_3d_camera` through
`affine`. Single-view builders use the same names with V = 1.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional

import numpy as np
import tensorflow_datasets as tfds

NUM_JOINTS = 18
IMAGE_SIZES = (64, 128, 256)
Features = Dict[str, tfds.features.FeatureConnector]


@dataclasses.dataclass(eq=False)
class PatchConfig(tfds.core.BuilderConfig):
  """Builder config choosing the patch side `image_size` (pixels)."""
  image_size: int = 256


def size_config_name(image_size: int) -> str:
  return f"patch{image_size}"


def view_images(image_size: int, num_views: Optional[int]) -> Features:
  """`image` (JPEG) and `mask` (PNG) per view."""
  s = image_size
  return {
      "image": tfds.features.Sequence(
          tfds.features.Image(shape=(s, s, 3), encoding_format="jpeg"),
          length=num_views),
      "mask": tfds.features.Sequence(
          tfds.features.Image(shape=(s, s, 1), encoding_format="png"),
          length=num_views),
  }


def float_tensor(*shape) -> tfds.features.Tensor:
  """float32 Tensor feature of `shape` (None for a free axis)."""
  return tfds.features.Tensor(shape=shape, dtype=np.float32)


def multiview_features(image_size: int, num_views: Optional[int],
                       num_joints: int = NUM_JOINTS,
                       extra: Optional[Features] = None
                       ) -> tfds.features.FeaturesDict:
  """The multi-view feature dict of the module docstring.

  Args:
    image_size: patch side S.
    num_views: V, or None when splits differ in their number of views.
    num_joints: J.
    extra: additional builder-specific features.
  """
  v = num_views
  features = dict(view_images(image_size, v))
  features.update({
      "joints_3d_camera": float_tensor(v, num_joints, 3),
      "joints_2d_patch": float_tensor(v, num_joints, 2),
      "affine": float_tensor(v, 2, 3),
      "rot": float_tensor(v, 3, 3),
      "trans": float_tensor(v, 3),
      "focal": float_tensor(v, 2),
      "center": float_tensor(v, 2),
      "subject": tfds.features.Text(),
      "action": tfds.features.Text(),
      "frame": np.int32,
  })
  if extra:
    features.update(extra)
  return tfds.features.FeaturesDict(features)
