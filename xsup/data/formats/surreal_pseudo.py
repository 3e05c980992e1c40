"""Reader of the converted synthetic-supervision renders (SURREAL-like).

Layout (one folder per render set, e.g. `surreal_h36m_pose` for SURREAL
frames or `surreal_h36m_pose_pseudo` for renders of sampled poses):

  <root>/info.npy                 int array: ids of the valid items
  <root>/image/image_000000.png   person-centred square RGB render
  <root>/mask/mask_000000.png     person mask, stored as 0/1 (or 0/255)
  <root>/joints/joint_000000.npy  [18, 3] float, `h36m18` layout

Joint file content: columns 0-1 are the image position normalised by the
image size, `x / width * 2 - 1` (so -1 is the left border and +1 the right
one), column 2 is the camera depth minus the pelvis depth, in metres.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

NUM_JOINTS = 18


@dataclasses.dataclass(frozen=True)
class SurrealPseudoLayout:
  """Paths of one render set rooted at `root`."""
  root: str

  @property
  def info_path(self) -> str:
    return os.path.join(self.root, "info.npy")

  def image_path(self, item: int) -> str:
    return os.path.join(self.root, "image", f"image_{item:06d}.png")

  def mask_path(self, item: int) -> str:
    return os.path.join(self.root, "mask", f"mask_{item:06d}.png")

  def joints_path(self, item: int) -> str:
    return os.path.join(self.root, "joints", f"joint_{item:06d}.npy")


def read_item_ids(path: str) -> np.ndarray:
  """`[N]` int64 item ids from `info.npy`.

  Raises:
    FileNotFoundError: missing file.
    ValueError: not a 1-D integer array (the iteration-indexed dictionary
      form of some render sets is not this layout).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Missing synthetic-supervision index file: "
                            f"{path}")
  try:
    info = np.load(path, allow_pickle=False)
  except ValueError as e:
    raise ValueError(
        f"{path}: expected a plain integer array of item ids; this file "
        f"holds Python objects (a dictionary-style index of another render "
        f"layout, which is not supported): {e}") from e
  except OSError as e:
    raise ValueError(f"{path}: not a .npy file: {e}") from e
  if info.ndim != 1 or not np.issubdtype(info.dtype, np.integer):
    raise ValueError(f"{path}: expected a 1-D integer array of item ids, got "
                     f"dtype {info.dtype} shape {info.shape}")
  if np.any(info < 0):
    raise ValueError(f"{path}: negative item ids")
  return info.astype(np.int64)


def read_joints(path: str) -> np.ndarray:
  """`[18, 3]` float64: normalised x, y in [-1, 1]; relative depth in m."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Missing synthetic-supervision joints file: "
                            f"{path}")
  try:
    joints = np.load(path, allow_pickle=False)
  except (ValueError, OSError) as e:
    raise ValueError(f"{path}: not a numeric .npy array: {e}") from e
  if joints.shape != (NUM_JOINTS, 3) or not np.issubdtype(
      joints.dtype, np.number):
    raise ValueError(f"{path}: expected a [{NUM_JOINTS}, 3] numeric array, "
                     f"got dtype {joints.dtype} shape {joints.shape}")
  return joints.astype(np.float64)


def joints_to_pixels(joints: np.ndarray, width: int, height: int
                     ) -> np.ndarray:
  """`[..., 18, 3]` file joints -> `[..., 18, 2]` image pixels."""
  xy = np.asarray(joints)[..., :2]
  return (xy + 1.0) * 0.5 * np.array([width, height], np.float64)


def joints_depth_mm(joints: np.ndarray) -> np.ndarray:
  """`[..., 18, 3]` file joints -> `[..., 18]` pelvis-relative depth, mm."""
  return np.asarray(joints)[..., 2] * 1000.0
