"""Reader of the MPII Human Pose annotations in the JSON form (mmpose).

Layout:

  <root>/annot/mpii_val.json        list of person annotations
  <root>/annot/mpii_gt_val.mat      `headboxes_src` [2, 2, N] for PCKh
  <root>/images/<image name>
  <masks>/<image name>              person masks (same file names)

Each JSON entry: {"image": name, "center": [x, y], "scale": s,
"joints": [[x, y] x 16], "joints_vis": [0/1 x 16]} with 1-based
(MATLAB) pixel coordinates; joints in the `mpii16` layout. The person box is
a square of side `s * 200` pixels around the centre.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import List, Tuple

import numpy as np

NUM_JOINTS = 16
PIXEL_STD = 200.0
# Crop of the X-as-Supervision evaluation: centre moved down by 15 * scale
# pixels, box enlarged by 1.25.
BOX_CENTER_SHIFT = 15.0
BOX_ENLARGE = 1.25
# PCKh head size = 0.6 x head box diagonal.
HEAD_SIZE_FACTOR = 0.6


@dataclasses.dataclass(frozen=True)
class MpiiPerson:
  """One annotated person (0-based pixel coordinates).

  Attributes:
    image: image file name.
    center: `[2]` person centre, pixels.
    scale: box side / 200.
    joints: `[16, 2]` pixels (`mpii16`).
    visible: `[16]` float 0/1.
  """
  image: str
  center: np.ndarray
  scale: float
  joints: np.ndarray
  visible: np.ndarray

  def crop_box(self) -> Tuple[np.ndarray, float]:
    """Square crop (centre `[2]` pixels, side pixels) of the reference."""
    center = self.center + np.array([0.0, BOX_CENTER_SHIFT * self.scale])
    return center, self.scale * PIXEL_STD * BOX_ENLARGE


def read_mpii_json(path: str) -> List[MpiiPerson]:
  """Reads `mpii_<split>.json`.

  Raises:
    FileNotFoundError: missing file.
    ValueError: malformed JSON or entry; names the file and entry index.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Missing MPII annotation file: {path}")
  with open(path, "r") as f:
    try:
      entries = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}: invalid JSON: {e}") from e
  if not isinstance(entries, list):
    raise ValueError(f"{path}: expected a JSON list of annotations, got "
                     f"{type(entries).__name__}")
  people = []
  for i, a in enumerate(entries):
    where = f"{path}: entry {i}"
    if not isinstance(a, dict):
      raise ValueError(f"{where}: expected an object, got {a!r}")
    missing = [k for k in ("image", "center", "scale", "joints",
                           "joints_vis") if k not in a]
    if missing:
      raise ValueError(f"{where}: missing keys {missing}")
    try:
      center = np.asarray(a["center"], np.float64).reshape(2)
      joints = np.asarray(a["joints"], np.float64)
      vis = np.asarray(a["joints_vis"], np.float64).reshape(-1)
      scale = float(a["scale"])
    except (TypeError, ValueError) as e:
      raise ValueError(f"{where}: malformed center/scale/joints: {e}") from e
    if joints.shape != (NUM_JOINTS, 2) or vis.shape != (NUM_JOINTS,):
      raise ValueError(f"{where}: expected {NUM_JOINTS} joints [x, y] and "
                       f"{NUM_JOINTS} visibilities, got joints "
                       f"{joints.shape}, joints_vis {vis.shape}")
    people.append(MpiiPerson(image=str(a["image"]), center=center - 1.0,
                             scale=scale, joints=joints - 1.0, visible=vis))
  return people


def read_head_sizes(path: str) -> np.ndarray:
  """`[N]` PCKh head sizes (pixels) from `mpii_gt_<split>.mat`."""
  import scipy.io  # pylint: disable=g-import-not-at-top
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Missing MPII ground-truth file: {path}")
  try:
    mat = scipy.io.loadmat(path)
  except Exception as e:  # scipy raises several types for corrupt files.
    raise ValueError(f"Cannot read MATLAB file {path}: {e}") from e
  if "headboxes_src" not in mat:
    raise ValueError(f"{path}: missing field 'headboxes_src'")
  boxes = np.asarray(mat["headboxes_src"], np.float64)
  if boxes.ndim != 3 or boxes.shape[:2] != (2, 2):
    raise ValueError(f"{path}: 'headboxes_src' must be [2, 2, N], got "
                     f"{boxes.shape}")
  return np.linalg.norm(boxes[1] - boxes[0], axis=0) * HEAD_SIZE_FACTOR


@dataclasses.dataclass(frozen=True)
class MpiiLayout:
  """Paths: `root` holds `annot/` and `images/`; `mask_root` the masks."""
  root: str
  mask_root: str

  def annotation_path(self, split: str) -> str:
    return os.path.join(self.root, "annot", f"mpii_{split}.json")

  def ground_truth_path(self, split: str) -> str:
    return os.path.join(self.root, "annot", f"mpii_gt_{split}.mat")

  def image_path(self, name: str) -> str:
    return os.path.join(self.root, "images", name)

  def mask_path(self, name: str) -> str:
    return os.path.join(self.mask_root, name)


def find_layout(data_root: str, split: str = "val") -> MpiiLayout:
  """Layout of `<data_root>/mpii/{annot,images}` and its masks.

  The masks are in `<data_root>/sam_masks/mpii_<split>`.
  """
  data_root = os.fspath(data_root)
  root = os.path.join(data_root, "mpii")
  for sub in ("annot", "images"):
    if not os.path.isdir(os.path.join(root, sub)):
      raise FileNotFoundError(f"Missing MPII folder {os.path.join(root, sub)}")
  mask_root = os.path.join(data_root, "sam_masks", f"mpii_{split}")
  if not os.path.isdir(mask_root):
    raise FileNotFoundError(f"Missing MPII mask folder {mask_root}")
  return MpiiLayout(root=root, mask_root=mask_root)
