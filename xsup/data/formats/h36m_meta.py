"""Reader of the preprocessed Human3.6M layout used by X-as-Supervision.

Layout (one folder per subject/action/subaction/camera sequence):

  <root>/annot/s_01_act_02_subact_01_ca_01/matlab_meta.txt
  <root>/images/s_01_act_02_subact_01_ca_01/s_01_act_02_subact_01_ca_01_000001.jpg
  <masks>/s_01_act_02_subact_01_ca_01/s_01_act_02_subact_01_ca_01_000001.png

Image files are numbered from 1 (frame index 0 is `..._000001.jpg`).

`matlab_meta.txt` is a whitespace-separated text file. Every line but the
first starts with one label token that is ignored:

  line 1:     number of frames N
  line 2:     <label> width height                 (image size, pixels)
  line 3:     <label> 9 numbers                    (rotation, see below)
  line 4:     <label> Tx Ty Tz                     (camera centre, world mm)
  line 5:     <label> fx fy                        (focal, pixels)
  line 6:     <label> cx cy                        (principal point, pixels)
  line 7:     <label> k1 k2 k3                     (radial distortion)
  line 8:     <label> p1 p2                        (tangential distortion)
  line 9:     <label> 17 joint ids                 (1-based, into the 32 joints)
  line 10+i:  <label> 96 numbers                   (frame i: 32 joints x,y,z,
                                                    world mm)

The 9 rotation numbers, read row-major into a 3x3 matrix M, give the
world-to-camera rotation R = M^T, and a world point X maps to the camera
frame as `R (X - T)`; in xsup's convention `x_cam = R x + t` with
`t = -R T`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import List, Sequence

import numpy as np

from xsup import skeleton

TRAIN_SUBJECTS = (1, 5, 6, 7, 8)
TEST_SUBJECTS = (9, 11)
ACTIONS = tuple(range(2, 17))
SUBACTIONS = (1, 2)
CAMERAS = (1, 2, 3, 4)

ACTION_NAMES = {
    2: "Directions", 3: "Discussion", 4: "Eating", 5: "Greeting",
    6: "Phoning", 7: "Posing", 8: "Purchases", 9: "Sitting",
    10: "SittingDown", 11: "Smoking", 12: "TakingPhoto", 13: "Waiting",
    14: "Walking", 15: "WalkDog", 16: "WalkTogether",
}

NUM_MOCAP_JOINTS = 32
NUM_SELECTED_JOINTS = 17
# Number of values after the label on lines 2..9 of matlab_meta.txt.
_HEADER_FIELDS = (("image size", 2), ("rotation", 9), ("camera centre", 3),
                  ("focal length", 2), ("principal point", 2),
                  ("radial distortion", 3), ("tangential distortion", 2),
                  ("joint ids", NUM_SELECTED_JOINTS))


@dataclasses.dataclass(frozen=True)
class H36MSequenceMeta:
  """Cameras and poses of one camera's sequence.

  Attributes:
    path: the matlab_meta.txt file read.
    image_width, image_height: image size in pixels.
    rot: `[3, 3]` world->camera rotation (`x_cam = rot x + trans`).
    camera_position: `[3]` camera centre in world mm.
    focal: `[2]` (fx, fy) pixels.
    center: `[2]` (cx, cy) pixels.
    radial: `[3]` (k1, k2, k3).
    tangential: `[2]` (p1, p2).
    joint_ids: `[17]` int 0-based indices of the selected mocap joints.
    joints_world_32: `[N, 32, 3]` world mm, all mocap joints.
  """
  path: str
  image_width: int
  image_height: int
  rot: np.ndarray
  camera_position: np.ndarray
  focal: np.ndarray
  center: np.ndarray
  radial: np.ndarray
  tangential: np.ndarray
  joint_ids: np.ndarray
  joints_world_32: np.ndarray

  @property
  def num_frames(self) -> int:
    return int(self.joints_world_32.shape[0])

  @property
  def trans(self) -> np.ndarray:
    """`[3]` mm translation of `x_cam = rot x + trans`."""
    return -self.rot @ self.camera_position

  def joints_world(self) -> np.ndarray:
    """`[N, 18, 3]` world mm in the `h36m18` layout (thorax appended)."""
    selected = self.joints_world_32[:, self.joint_ids]
    return skeleton.convert(selected, "h36m17", "h36m18")

  def joints_camera(self) -> np.ndarray:
    """`[N, 18, 3]` camera-frame mm in the `h36m18` layout."""
    world = self.joints_world()
    return np.einsum("ij,nkj->nki", self.rot, world - self.camera_position)


def _numbers(path: str, line_no: int, line: str, what: str, count: int,
             exact: bool = True) -> np.ndarray:
  """Parses the values after the label of `line` (1-based `line_no`)."""
  tokens = line.split()[1:]
  if len(tokens) < count or (exact and len(tokens) != count):
    expected = f"{count}" if exact else f"at least {count}"
    raise ValueError(f"{path}:{line_no}: expected a label and {expected} "
                     f"{what} values, got {len(tokens)} values: {line!r}")
  try:
    return np.array([float(t) for t in tokens[:count]], np.float64)
  except ValueError:
    raise ValueError(f"{path}:{line_no}: non-numeric {what} value in "
                     f"{line!r}") from None


def read_matlab_meta(path: str) -> H36MSequenceMeta:
  """Reads one `matlab_meta.txt` (format in the module docstring).

  Raises:
    FileNotFoundError: the file is missing.
    ValueError: a malformed line; the message names the file and line.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Missing Human3.6M annotation file: {path}")
  with open(path, "r") as f:
    lines = [ln.strip() for ln in f.read().splitlines()]
  while lines and not lines[-1]:
    lines.pop()
  if not lines:
    raise ValueError(f"{path}: empty Human3.6M annotation file")
  try:
    num_frames = int(float(lines[0].split()[0]))
  except (ValueError, IndexError):
    raise ValueError(f"{path}:1: expected the number of frames, got "
                     f"{lines[0]!r}") from None
  if num_frames < 0:
    raise ValueError(f"{path}:1: negative number of frames {num_frames}")
  header_end = 1 + len(_HEADER_FIELDS)
  if len(lines) < header_end + num_frames:
    raise ValueError(
        f"{path}: expected {header_end} header lines and {num_frames} frame "
        f"lines (line 1 says {num_frames} frames), the file has "
        f"{len(lines)} lines")
  header = [
      _numbers(path, i + 2, lines[i + 1], what, count)
      for i, (what, count) in enumerate(_HEADER_FIELDS)]
  size, rot, position, focal, center, radial, tangential, ids = header
  joint_ids = ids.astype(np.int64)
  if (np.any(joint_ids != ids) or joint_ids.min() < 1 or
      joint_ids.max() > NUM_MOCAP_JOINTS):
    raise ValueError(f"{path}:9: joint ids must be integers in 1.."
                     f"{NUM_MOCAP_JOINTS}, got {ids.tolist()}")
  rot = rot.reshape(3, 3).T
  if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-3):
    raise ValueError(f"{path}:3: the 9 numbers are not a rotation matrix: "
                     f"{rot.T.ravel().tolist()}")
  poses = np.stack([
      _numbers(path, header_end + 1 + n, lines[header_end + n],
               f"frame {n} joint", 3 * NUM_MOCAP_JOINTS, exact=False)
      for n in range(num_frames)]) if num_frames else np.zeros(
          (0, 3 * NUM_MOCAP_JOINTS))
  return H36MSequenceMeta(
      path=path, image_width=int(size[0]), image_height=int(size[1]),
      rot=rot, camera_position=position, focal=focal, center=center,
      radial=radial, tangential=tangential, joint_ids=joint_ids - 1,
      joints_world_32=poses.reshape(num_frames, NUM_MOCAP_JOINTS, 3))


def sequence_name(subject: int, action: int, subaction: int,
                  camera: int) -> str:
  """Folder name, e.g. `s_01_act_02_subact_01_ca_01` (1-based camera)."""
  return (f"s_{subject:02d}_act_{action:02d}_subact_{subaction:02d}"
          f"_ca_{camera:02d}")


@dataclasses.dataclass(frozen=True)
class H36MLayout:
  """Paths of the preprocessed layout.

  Attributes:
    root: folder holding `annot/` and `images/`.
    mask_root: folder holding one mask folder per sequence.
  """
  root: str
  mask_root: str

  def meta_path(self, sequence: str) -> str:
    return os.path.join(self.root, "annot", sequence, "matlab_meta.txt")

  def image_path(self, sequence: str, frame: int) -> str:
    """`frame` is 0-based."""
    return os.path.join(self.root, "images", sequence,
                        f"{sequence}_{frame + 1:06d}.jpg")

  def mask_path(self, sequence: str, frame: int) -> str:
    """`frame` is 0-based."""
    return os.path.join(self.mask_root, sequence,
                        f"{sequence}_{frame + 1:06d}.png")


def find_layout(data_root: str) -> H36MLayout:
  """Locates the layout under the `data/` folder of the reference tree.

  Expects `<data_root>/hm36/{annot,images}` and the masks in
  `<data_root>/sam_masks/h36m` (or `sam_masks/hm36`).
  """
  data_root = os.fspath(data_root)
  root = os.path.join(data_root, "hm36")
  for sub in ("annot", "images"):
    if not os.path.isdir(os.path.join(root, sub)):
      raise FileNotFoundError(
          f"Missing Human3.6M folder {os.path.join(root, sub)} (expected "
          "<manual_dir>/hm36/annot and <manual_dir>/hm36/images)")
  candidates = [os.path.join(data_root, "sam_masks", name)
                for name in ("h36m", "hm36")]
  for mask_root in candidates:
    if os.path.isdir(mask_root):
      return H36MLayout(root=root, mask_root=mask_root)
  raise FileNotFoundError(
      f"Missing Human3.6M mask folder: none of {candidates} exists")


def select_frames(num_frames: int, count: int, seed: Sequence[int]
                  ) -> List[int]:
  """Sorted random subset of `count` frame indices (all when `count` <= 0
  or the sequence is shorter), drawn deterministically from `seed`."""
  if count <= 0 or num_frames <= count:
    return list(range(num_frames))
  rng = np.random.default_rng(list(seed))
  return sorted(int(i) for i in rng.choice(num_frames, count, replace=False))
