"""Readers of VideoPose3D's preprocessed Human3.6M files.

* `data_3d_h36m.npz`: `positions_3d`, a pickled dict
  `subject -> action -> [T, 32, 3]` float world coordinates in metres (the 32
  Human3.6M mocap joints, layout `h36m32` of `xsup.skeleton`).
* `data_2d_h36m_<keypoints>.npz`: `positions_2d`, a pickled dict
  `subject -> action -> [cam0, cam1, cam2, cam3]` of `[T, 17, 2]` pixels
  (layout `h36m17`), and `metadata` (a pickled dict with `num_joints`,
  `keypoints_symmetry`, ...). `<keypoints>` is e.g. `gt` (projected mocap)
  or `cpn_ft_h36m_dbb` (detections).

Both are numpy archives holding pickled Python objects, so they are read
with `allow_pickle=True`: only open files from a source you trust.

`align_2d_to_3d` pairs the two the way VideoPose3D and ITES do: 2D
sequences longer than the mocap are cut to the mocap length, and the
detected-keypoint files, which lack S11 "Directions" in some releases, may
skip that one sequence.
"""

import os
from typing import Any, Dict, List, Mapping, NamedTuple, Tuple, Union

from absl import logging
import numpy as np

PathLike = Any  # str or os.PathLike

NUM_MOCAP_JOINTS = 32
NUM_KEYPOINTS = 17

# The sequence some detected-keypoint releases leave out.
_OPTIONAL_2D_SEQUENCES = (("S11", "Directions"),)

Positions3d = Dict[str, Dict[str, np.ndarray]]
Positions2d = Dict[str, Dict[str, List[np.ndarray]]]


class PairedSequence(NamedTuple):
  """One Human3.6M sequence with its mocap and 2D keypoints per camera.

  Attributes:
    subject: e.g. "S1".
    action: VideoPose3D sequence name, e.g. "Walking 1".
    positions_3d: `[T, 32, 3]` float32 world metres.
    positions_2d: one `[T, 17, 2]` float32 pixel array per camera.
  """
  subject: str
  action: str
  positions_3d: np.ndarray
  positions_2d: List[np.ndarray]


def _load_npz(path: PathLike, fields: Tuple[str, ...]) -> Dict[str, Any]:
  """Reads `fields` of the archive at `path` (pickled objects unpickled)."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"VideoPose3D file not found: {path}")
  try:
    archive = np.load(path, allow_pickle=True)
  except Exception as e:  # numpy raises several types for bad archives
    raise ValueError(f"{path}: not a readable numpy .npz archive ({e})"
                     ) from e
  if not hasattr(archive, "files"):
    raise ValueError(f"{path}: expected an .npz archive with fields "
                     f"{list(fields)}, got a single array")
  with archive:
    out = {}
    for field in fields:
      if field not in archive.files:
        raise KeyError(f"{path}: missing field {field!r}; fields present: "
                       f"{archive.files}")
      obj = archive[field]
      if (isinstance(obj, np.ndarray) and obj.dtype == object and
          obj.shape == ()):
        obj = obj.item()
      out[field] = obj
  return out


def _check_array(arr: Any, shape_tail: Tuple[int, ...], where: str
                 ) -> np.ndarray:
  """`arr` as float32 with shape `[T, *shape_tail]`, else a clear error."""
  if not isinstance(arr, np.ndarray) or arr.dtype == object:
    raise ValueError(f"{where}: expected a numeric array, got "
                     f"{type(arr).__name__}")
  expected = "[T, " + ", ".join(str(s) for s in shape_tail) + "]"
  if arr.ndim != 1 + len(shape_tail) or arr.shape[1:] != shape_tail:
    raise ValueError(f"{where}: expected shape {expected}, got "
                     f"{tuple(arr.shape)}")
  return arr.astype(np.float32, copy=False)


def load_positions_3d(path: PathLike) -> Positions3d:
  """Reads `data_3d_h36m.npz`.

  Args:
    path: the file.
  Returns:
    subject -> action -> `[T, 32, 3]` float32 world metres.
  Raises:
    FileNotFoundError, KeyError, ValueError: naming the file and field.
  """
  path = os.fspath(path)
  data = _load_npz(path, ("positions_3d",))["positions_3d"]
  if not isinstance(data, dict):
    raise ValueError(f"{path}: field 'positions_3d' must be a pickled dict "
                     f"subject -> action -> array, got {type(data).__name__}")
  out: Positions3d = {}
  for subject, actions in data.items():
    if not isinstance(actions, dict):
      raise ValueError(f"{path}: positions_3d[{subject!r}] must be a dict "
                       f"action -> array, got {type(actions).__name__}")
    out[str(subject)] = {
        str(action): _check_array(
            arr, (NUM_MOCAP_JOINTS, 3),
            f"{path}: positions_3d[{subject!r}][{action!r}]")
        for action, arr in actions.items()}
  return out


def load_positions_2d(path: PathLike) -> Tuple[Positions2d, Dict[str, Any]]:
  """Reads `data_2d_h36m_<keypoints>.npz`.

  Args:
    path: the file.
  Returns:
    `(positions_2d, metadata)`: subject -> action -> list (one per camera)
    of `[T, 17, 2]` float32 pixels; and the metadata dict (with at least
    `num_joints` and `keypoints_symmetry`).
  Raises:
    FileNotFoundError, KeyError, ValueError: naming the file and field.
  """
  path = os.fspath(path)
  fields = _load_npz(path, ("positions_2d", "metadata"))
  data, metadata = fields["positions_2d"], fields["metadata"]
  if not isinstance(metadata, dict):
    raise ValueError(f"{path}: field 'metadata' must be a pickled dict, got "
                     f"{type(metadata).__name__}")
  for key in ("num_joints", "keypoints_symmetry"):
    if key not in metadata:
      raise KeyError(f"{path}: metadata has no {key!r}; keys present: "
                     f"{sorted(metadata)}")
  if int(metadata["num_joints"]) != NUM_KEYPOINTS:
    raise ValueError(f"{path}: metadata['num_joints'] is "
                     f"{metadata['num_joints']}, expected {NUM_KEYPOINTS} "
                     "(Human3.6M 17-joint keypoints)")
  symmetry = metadata["keypoints_symmetry"]
  if len(symmetry) != 2 or len(symmetry[0]) != len(symmetry[1]):
    raise ValueError(f"{path}: metadata['keypoints_symmetry'] must be two "
                     f"equally long lists (left, right), got {symmetry!r}")
  if not isinstance(data, dict):
    raise ValueError(f"{path}: field 'positions_2d' must be a pickled dict "
                     "subject -> action -> list of per-camera arrays, got "
                     f"{type(data).__name__}")
  out: Positions2d = {}
  for subject, actions in data.items():
    if not isinstance(actions, dict):
      raise ValueError(f"{path}: positions_2d[{subject!r}] must be a dict "
                       f"action -> list, got {type(actions).__name__}")
    out[str(subject)] = {}
    for action, cams in actions.items():
      where = f"{path}: positions_2d[{subject!r}][{action!r}]"
      if not isinstance(cams, (list, tuple)) and not (
          isinstance(cams, np.ndarray) and cams.dtype == object):
        raise ValueError(f"{where}: expected a list of per-camera arrays, "
                         f"got {type(cams).__name__}")
      out[str(subject)][str(action)] = [
          _check_array(arr, (NUM_KEYPOINTS, 2), f"{where}[{i}]")
          for i, arr in enumerate(cams)]
  return out, metadata


def align_2d_to_3d(positions_3d: Positions3d, positions_2d: Positions2d, *,
                   subjects: List[str], ground_truth: bool,
                   source_3d: str = "positions_3d",
                   source_2d: str = "positions_2d",
                   num_cameras: Union[int, Mapping[str, int]] = 4
                   ) -> List[PairedSequence]:
  """Pairs each mocap sequence of `subjects` with its 2D keypoints.

  2D sequences longer than the mocap are cut to the mocap length (some
  Human3.6M videos have extra frames). With detected keypoints
  (`ground_truth=False`), S11 "Directions" may be absent from the 2D file:
  it is skipped with a warning, as VideoPose3D and ITES do.

  Args:
    positions_3d: from `load_positions_3d`.
    positions_2d: from `load_positions_2d`.
    subjects: the subjects to pair, in order; each must be in both files.
    ground_truth: whether the 2D keypoints are projected mocap (`gt`).
    source_3d: name of the 3D file for error messages.
    source_2d: name of the 2D file for error messages.
    num_cameras: cameras expected per 2D sequence, or subject -> cameras.
  Returns:
    One `PairedSequence` per (subject, action) in the 3D file's order.
  Raises:
    KeyError: a subject or an action is missing from a file.
    ValueError: camera count or lengths do not match.
  """
  out: List[PairedSequence] = []
  for subject in subjects:
    if subject not in positions_3d:
      raise KeyError(f"{source_3d}: subject {subject!r} missing; subjects "
                     f"present: {sorted(positions_3d)}")
    if subject not in positions_2d:
      raise KeyError(f"{source_2d}: subject {subject!r} is missing from the "
                     f"2D keypoints; subjects present: "
                     f"{sorted(positions_2d)}")
    for action, pos3d in positions_3d[subject].items():
      if action not in positions_2d[subject]:
        if not ground_truth and (subject, action) in _OPTIONAL_2D_SEQUENCES:
          logging.warning("%s: %s %r has no 2D keypoints (known gap of the "
                          "detected-keypoint files); skipping it.",
                          source_2d, subject, action)
          continue
        raise KeyError(f"{source_2d}: action {action!r} of subject "
                       f"{subject!r} is missing from the 2D keypoints; "
                       f"actions present: {sorted(positions_2d[subject])}")
      cams = positions_2d[subject][action]
      where = f"{source_2d}: positions_2d[{subject!r}][{action!r}]"
      expected = (num_cameras[subject] if isinstance(num_cameras, Mapping)
                  else num_cameras)
      if len(cams) != expected:
        raise ValueError(f"{where}: expected {expected} cameras (one per "
                         f"calibrated camera of {subject!r}), got "
                         f"{len(cams)}")
      length = pos3d.shape[0]
      aligned = []
      for i, kp in enumerate(cams):
        if kp.shape[0] < length:
          raise ValueError(
              f"{where}[{i}]: {kp.shape[0]} frames but the mocap in "
              f"{source_3d} has {length}; 2D sequences must be at least as "
              "long as the mocap")
        aligned.append(kp[:length])
      out.append(PairedSequence(subject, action, pos3d, aligned))
  return out
