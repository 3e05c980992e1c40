"""Readers of MPI-INF-3DHP annotations (training sequences and test set).

Training layout (frames extracted from the videos, numbered from 1):

  <root>/S1/Seq1/annot.mat
  <root>/S1/Seq1/camera.calibration
  <root>/S1/Seq1/images/video_0/frame_000001.jpg
  <root>/S1/Seq1/masks/video_0/frame_000001.jpg         (dataset FG masks)
  <root>/S1/Seq1/chair_masks/video_0/frame_000001.jpg   (dataset chair masks)
  <sam>/S1/Seq1/masks/video_0/frame_000001.jpg          (person masks)

`annot.mat` (MATLAB v5, read with scipy.io.loadmat) holds the cells
`annot2` (per camera `[N, 56]`: 28 joints x (x, y) pixels), `annot3` and
`univ_annot3` (per camera `[N, 84]`: 28 joints x (x, y, z) camera mm;
"univ" is rescaled to the universal skeleton height), one cell row per
camera (14 cameras).

`camera.calibration` is a text file: after a header line, one block per
camera:

  name          <id>
    sensor      <w> <h>
    size        <width> <height>
    animated    0
    intrinsic   <16 numbers: 4x4 row-major K; fx, cx, fy, cy at 0, 2, 5, 6>
    extrinsic   <16 numbers: 4x4 row-major [R t; 0 1] world->camera, mm>
    radial      <...>

Test set layout:

  <test_root>/TS1/annot_data.mat
  <test_root>/TS1/imageSequence/img_000001.jpg

`annot_data.mat` (MATLAB v7.3 = HDF5, read with h5py; v5 files are read
with scipy) holds `annot2` (17 x 2 per frame), `annot3` and `univ_annot3`
(17 x 3 camera mm per frame) in the `mpi3dhp17` layout, `valid_frame` (1 for
frames used by the evaluation protocol) and `activity_annotation` (1..7,
`ACTIVITY_NAMES`). The test cameras are not in the files; their intrinsics
are the published constants `TEST_INTRINSICS` (TS1-4: studio camera 8;
TS5-6: outdoor camera, 1920x1080).
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
from typing import Dict, Sequence, Tuple

import numpy as np

NUM_CAMERAS = 14
TRAIN_VIEWS = (0, 2, 4, 7, 8)
TRAIN_SUBJECTS = (1, 2, 3, 4, 5, 6)
VALIDATION_SUBJECTS = (7, 8)
SEQUENCES = (1, 2)
TEST_SEQUENCES = (1, 2, 3, 4, 5, 6)
NUM_TRAIN_JOINTS = 28
NUM_TEST_JOINTS = 17

ACTIVITY_NAMES = {
    1: "Standing/Walking", 2: "Exercising", 3: "Sitting",
    4: "Reaching/Crouching", 5: "On the Floor", 6: "Sports",
    7: "Miscellaneous",
}


@dataclasses.dataclass(frozen=True)
class Camera:
  """A calibrated camera.

  Attributes:
    focal: `[2]` (fx, fy) pixels.
    center: `[2]` (cx, cy) pixels.
    rot: `[3, 3]` world->camera rotation (`x_cam = rot x + trans`).
    trans: `[3]` mm.
    width, height: image size in pixels.
  """
  focal: np.ndarray
  center: np.ndarray
  rot: np.ndarray
  trans: np.ndarray
  width: int
  height: int


# Published intrinsics of the test sequences (no extrinsics: world = camera).
_STUDIO = Camera(focal=np.array([1500.172, 1500.837]),
                 center=np.array([1017.387, 1043.032]), rot=np.eye(3),
                 trans=np.zeros(3), width=2048, height=2048)
_OUTDOOR = Camera(focal=np.array([1683.98345952, 1672.59370772]),
                  center=np.array([939.85754016, 560.140743168]),
                  rot=np.eye(3), trans=np.zeros(3), width=1920, height=1080)
TEST_INTRINSICS = {1: _STUDIO, 2: _STUDIO, 3: _STUDIO, 4: _STUDIO,
                   5: _OUTDOOR, 6: _OUTDOOR}


def _require_file(path: str, what: str) -> str:
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Missing MPI-INF-3DHP {what} file: {path}")
  return path


def read_camera_calibration(path: str) -> Dict[int, Camera]:
  """Reads `camera.calibration` into {camera id: Camera}.

  Raises:
    FileNotFoundError: missing file.
    ValueError: malformed block; the message names the file and line.
  """
  path = _require_file(path, "camera calibration")
  with open(path, "r") as f:
    lines = f.read().splitlines()
  cameras = {}
  current = None
  fields = {}

  def finish(line_no):
    if current is None:
      return
    for key in ("size", "intrinsic", "extrinsic"):
      if key not in fields:
        raise ValueError(f"{path}:{line_no}: camera {current} has no "
                         f"'{key}' line")
    k = fields["intrinsic"].reshape(4, 4)
    e = fields["extrinsic"].reshape(4, 4)
    cameras[current] = Camera(
        focal=np.array([k[0, 0], k[1, 1]]), center=np.array([k[0, 2],
                                                             k[1, 2]]),
        rot=e[:3, :3].copy(), trans=e[:3, 3].copy(),
        width=int(fields["size"][0]), height=int(fields["size"][1]))

  expected = {"size": 2, "intrinsic": 16, "extrinsic": 16}
  for i, line in enumerate(lines):
    tokens = line.split()
    if not tokens:
      continue
    key = tokens[0]
    if key == "name":
      finish(i + 1)
      try:
        current = int(tokens[1])
      except (IndexError, ValueError):
        raise ValueError(f"{path}:{i + 1}: expected 'name <camera id>', got "
                         f"{line!r}") from None
      fields = {}
    elif key in expected:
      if current is None:
        raise ValueError(f"{path}:{i + 1}: '{key}' line before any 'name' "
                         "line")
      if len(tokens) - 1 != expected[key]:
        raise ValueError(f"{path}:{i + 1}: expected {expected[key]} numbers "
                         f"after '{key}', got {len(tokens) - 1}: {line!r}")
      try:
        fields[key] = np.array([float(t) for t in tokens[1:]])
      except ValueError:
        raise ValueError(f"{path}:{i + 1}: non-numeric '{key}' value in "
                         f"{line!r}") from None
  finish(len(lines))
  if not cameras:
    raise ValueError(f"{path}: no camera blocks ('name <id>' lines) found")
  return cameras


def read_train_annotations(path: str, views: Sequence[int] = TRAIN_VIEWS
                           ) -> Dict[int, Dict[str, np.ndarray]]:
  """Reads a training `annot.mat`.

  Returns:
    {view: {"annot2": [N, 28, 2] pixels, "annot3": [N, 28, 3] camera mm,
    "univ_annot3": [N, 28, 3] camera mm}} for the requested views.
  Raises:
    FileNotFoundError / ValueError naming the file and the field.
  """
  import scipy.io  # pylint: disable=g-import-not-at-top
  path = _require_file(path, "annotation")
  try:
    mat = scipy.io.loadmat(path)
  except Exception as e:  # scipy raises several types for corrupt files.
    raise ValueError(f"Cannot read MATLAB file {path}: {e}") from e
  out = {v: {} for v in views}
  for key, dim in (("annot2", 2), ("annot3", 3), ("univ_annot3", 3)):
    if key not in mat:
      raise ValueError(f"{path}: missing field '{key}' (fields: "
                       f"{sorted(k for k in mat if not k.startswith('__'))})")
    cells = np.asarray(mat[key])
    if cells.dtype != object:
      raise ValueError(f"{path}: field '{key}' must be a cell array (one "
                       f"cell per camera), got a {cells.dtype} array of shape "
                       f"{cells.shape}")
    cells = cells.reshape(-1)
    for v in views:
      if v >= cells.size:
        raise ValueError(f"{path}: field '{key}' has {cells.size} camera "
                         f"cells, camera {v} requested")
      arr = np.asarray(cells[v], np.float64)
      if arr.ndim != 2 or arr.shape[1] != NUM_TRAIN_JOINTS * dim:
        raise ValueError(
            f"{path}: field '{key}' camera {v}: expected [frames, "
            f"{NUM_TRAIN_JOINTS * dim}], got shape {arr.shape}")
      out[v][key] = arr.reshape(arr.shape[0], NUM_TRAIN_JOINTS, dim)
  return out


@dataclasses.dataclass(frozen=True)
class MpiTestAnnotations:
  """One test sequence.

  Attributes:
    annot2: `[N, 17, 2]` pixels.
    annot3: `[N, 17, 3]` camera mm.
    univ_annot3: `[N, 17, 3]` camera mm, universal skeleton scale.
    valid: `[N]` bool, frames of the evaluation protocol.
    activity: `[N]` int activity ids (`ACTIVITY_NAMES`).
  """
  annot2: np.ndarray
  annot3: np.ndarray
  univ_annot3: np.ndarray
  valid: np.ndarray
  activity: np.ndarray


def _load_test_fields(path: str) -> Dict[str, np.ndarray]:
  """Reads the fields of `annot_data.mat` in HDF5 axis order (frames first)."""
  import h5py  # pylint: disable=g-import-not-at-top
  keys = ("annot2", "annot3", "univ_annot3", "valid_frame",
          "activity_annotation")
  if h5py.is_hdf5(path):
    with h5py.File(path, "r") as f:
      missing = [k for k in keys if k not in f]
      if missing:
        raise ValueError(f"{path}: missing fields {missing} (fields: "
                         f"{sorted(f.keys())})")
      return {k: np.asarray(f[k][()]) for k in keys}
  import scipy.io  # pylint: disable=g-import-not-at-top
  try:
    mat = scipy.io.loadmat(path)
  except Exception as e:  # scipy raises several types for corrupt files.
    raise ValueError(f"Cannot read MATLAB file {path}: {e}") from e
  missing = [k for k in keys if k not in mat]
  if missing:
    raise ValueError(f"{path}: missing fields {missing}")
  # MATLAB stores [3, 17, 1, N]; HDF5 readers see the reversed axes.
  return {k: np.asarray(mat[k]).T for k in keys}


def read_test_annotations(path: str) -> MpiTestAnnotations:
  """Reads a test-set `annot_data.mat` (v7.3/HDF5 or v5)."""
  path = _require_file(path, "test annotation")
  try:
    fields = _load_test_fields(path)
  except OSError as e:
    raise ValueError(f"Cannot read MATLAB file {path}: {e}") from e
  valid = fields["valid_frame"].reshape(-1)
  n = valid.shape[0]
  out = {}
  for key, dim in (("annot2", 2), ("annot3", 3), ("univ_annot3", 3)):
    arr = np.asarray(fields[key], np.float64)
    if arr.size != n * NUM_TEST_JOINTS * dim or arr.shape[-1] != dim:
      raise ValueError(
          f"{path}: field '{key}' must hold {n} frames x {NUM_TEST_JOINTS} "
          f"joints x {dim} (MATLAB {dim}x{NUM_TEST_JOINTS}x1xN), got shape "
          f"{arr.shape}")
    out[key] = arr.reshape(n, NUM_TEST_JOINTS, dim)
  activity = fields["activity_annotation"].reshape(-1)
  if activity.shape[0] != n:
    raise ValueError(f"{path}: 'activity_annotation' has {activity.shape[0]}"
                     f" entries, 'valid_frame' has {n}")
  return MpiTestAnnotations(valid=valid.astype(bool),
                         activity=activity.astype(np.int64), **out)


@dataclasses.dataclass(frozen=True)
class MpiInf3dhpLayout:
  """Paths of the training sequences and the test set.

  Attributes:
    root: folder holding `S1/Seq1/...`.
    mask_root: folder holding the person masks `S1/Seq1/masks/...`.
    test_root: folder holding `TS1/...` (None if absent).
  """
  root: str
  mask_root: str
  test_root: str | None

  def sequence_dir(self, subject: int, sequence: int) -> str:
    return os.path.join(self.root, f"S{subject}", f"Seq{sequence}")

  def annotation_path(self, subject: int, sequence: int) -> str:
    return os.path.join(self.sequence_dir(subject, sequence), "annot.mat")

  def calibration_path(self, subject: int, sequence: int) -> str:
    return os.path.join(self.sequence_dir(subject, sequence),
                        "camera.calibration")

  def _frame(self, base: str, subject: int, sequence: int, sub: str,
             view: int, frame: int) -> str:
    return os.path.join(base, f"S{subject}", f"Seq{sequence}", sub,
                        f"video_{view}", f"frame_{frame + 1:06d}.jpg")

  def image_path(self, subject: int, sequence: int, view: int,
                 frame: int) -> str:
    """`frame` is 0-based."""
    return self._frame(self.root, subject, sequence, "images", view, frame)

  def dataset_mask_path(self, subject: int, sequence: int, view: int,
                        frame: int) -> str:
    return self._frame(self.root, subject, sequence, "masks", view, frame)

  def chair_mask_path(self, subject: int, sequence: int, view: int,
                      frame: int) -> str:
    return self._frame(self.root, subject, sequence, "chair_masks", view,
                       frame)

  def mask_path(self, subject: int, sequence: int, view: int,
                frame: int) -> str:
    """Person (SAM) mask of a frame."""
    return self._frame(self.mask_root, subject, sequence, "masks", view,
                       frame)

  def num_frames(self, subject: int, sequence: int, view: int) -> int:
    """Number of extracted frames `frame_*.jpg` of a view."""
    folder = os.path.join(self.sequence_dir(subject, sequence), "images",
                          f"video_{view}")
    if not os.path.isdir(folder):
      raise FileNotFoundError(f"Missing MPI-INF-3DHP frame folder: {folder}")
    names = [os.path.basename(p)
             for p in glob.glob(os.path.join(folder, "frame_*.jpg"))]
    return sum(1 for n in names if re.fullmatch(r"frame_\d{6}\.jpg", n))

  def test_dir(self, sequence: int) -> str:
    if self.test_root is None:
      raise FileNotFoundError("MPI-INF-3DHP test set not found (expected "
                              "mpi_inf_3dhp/mpi_inf_3dhp_test_set/TS1 or "
                              "mpi_inf_3dhp_test_set/TS1 in manual_dir)")
    return os.path.join(self.test_root, f"TS{sequence}")

  def test_annotation_path(self, sequence: int) -> str:
    return os.path.join(self.test_dir(sequence), "annot_data.mat")

  def test_image_path(self, sequence: int, frame: int) -> str:
    """`frame` is 0-based."""
    return os.path.join(self.test_dir(sequence), "imageSequence",
                        f"img_{frame + 1:06d}.jpg")


def find_layout(data_root: str) -> MpiInf3dhpLayout:
  """Locates the layout under the `data/` folder of the reference tree.

  Expects `<data_root>/mpi_inf_3dhp/S*/Seq*`, person masks in
  `<data_root>/sam_masks/mpi_inf_3dhp`, and the test set in
  `<data_root>/mpi_inf_3dhp/mpi_inf_3dhp_test_set` or
  `<data_root>/mpi_inf_3dhp_test_set` (optional).
  """
  data_root = os.fspath(data_root)
  root = os.path.join(data_root, "mpi_inf_3dhp")
  if not os.path.isdir(root):
    raise FileNotFoundError(f"Missing MPI-INF-3DHP folder: {root}")
  mask_root = os.path.join(data_root, "sam_masks", "mpi_inf_3dhp")
  test_root = None
  for candidate in (os.path.join(root, "mpi_inf_3dhp_test_set"),
                    os.path.join(data_root, "mpi_inf_3dhp_test_set")):
    if os.path.isdir(candidate):
      test_root = candidate
      break
  return MpiInf3dhpLayout(root=root, mask_root=mask_root,
                          test_root=test_root)


def camera_of_test_sequence(sequence: int) -> Camera:
  if sequence not in TEST_INTRINSICS:
    raise ValueError(f"Unknown MPI-INF-3DHP test sequence TS{sequence}; "
                     f"known: {sorted(TEST_INTRINSICS)}")
  return TEST_INTRINSICS[sequence]


def frame_steps(num_frames: int, step: int) -> Tuple[int, ...]:
  """Frame indices 0, step, 2 step, ... below `num_frames` (step >= 1)."""
  return tuple(range(0, num_frames, max(int(step), 1)))
