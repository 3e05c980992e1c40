"""`h36m_lifting`: Human3.6M 2D/3D keypoint pairs from VideoPose3D's files.

Reads `data_3d_h36m.npz` (mocap, world metres) and
`data_2d_h36m_<keypoints>.npz` (2D keypoints per camera) from the manual
directory. The 32 mocap joints are reduced to H36M-17
(`xsup.skeleton.convert(x, "h36m32", "h36m17")`) and moved into each
camera's frame with the published extrinsics
(`xsup.data.formats.h36m_cameras`). One example per (frame, camera); all
frames are kept (50 fps).

Features (shared schema of the lifting builders, `lifting_features`):
  keypoints_2d: `[17, 2]` float32 pixels, from the 2D file.
  keypoints_3d: `[17, 3]` float32 camera frame, metres (not root-centred).
  focal, center: `[2]` float32 pixels of the camera.
  subject: "S1" ... "S11" (or the file's own subject names).
  action: the canonical name of the 15 Human3.6M actions (take numbers and
    spelling variants grouped, `h36m_cameras.action_label`); any other
    sequence name is kept as it is.
  camera: int32 camera index 0..3 (0..V-1 with a cameras file).
  frame: int32 frame index within the sequence.

Configs: `gt` (2D = projected mocap) and `cpn_ft_h36m_dbb` (CPN detections
fine-tuned on Human3.6M). Splits: `train` (S1, S5, S6, S7, S8) and `test`
(S9, S11); config fields `train_subjects` / `test_subjects` choose others.

Other motion written in VideoPose3D's format (any action names, any
subject names) works too: the Human3.6M subjects use the published
cameras; other subjects need a cameras file (config field `cameras_file`,
JSON, format in `h36m_cameras.CAMERAS_FILE_FORMAT`; a relative path is
taken inside the manual directory), which may also replace the published
cameras of a Human3.6M subject. Set them with `config.dataset.
builder_overrides` (`cameras_file`, `train_subjects`, `test_subjects`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import (Dict, Iterator, List, NamedTuple, Optional, Sequence,
                    Tuple)

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from xsup import skeleton
from xsup.data.builders import lifting_features
from xsup.data.formats import h36m_cameras
from xsup.data.formats import videopose3d
from xsup.geometry import camera as camera_lib

FILE_3D = "data_3d_h36m.npz"
FILE_2D_PATTERN = "data_2d_h36m_{}.npz"

_MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Human3.6M is licensed: register at http://vision.imar.ro/human3.6m/ first.
Then put VideoPose3D's preprocessed files (github.com/facebookresearch/
VideoPose3D, DATASETS.md) directly in the manual directory:
  * data_3d_h36m.npz: the mocap (`positions_3d`), made by VideoPose3D's
    `data/prepare_data_h36m.py` from the Human3.6M poses;
  * data_2d_h36m_gt.npz: the projected mocap (config `gt`), made by the same
    script;
  * data_2d_h36m_cpn_ft_h36m_dbb.npz: CPN detections fine-tuned on
    Human3.6M (config `cpn_ft_h36m_dbb`), linked from VideoPose3D's
    DATASETS.md.
Only the 2D file of the chosen config is needed. For subjects other than
the Human3.6M ones, also put a cameras file (JSON, see
`xsup.data.formats.h36m_cameras.CAMERAS_FILE_FORMAT`) there and name it
with the config field `cameras_file`.
"""


class Sources(NamedTuple):
  """Where the values come from, for error messages."""
  path_3d: str
  path_2d: str
  cameras: str


@dataclasses.dataclass
class H36mLiftingConfig(tfds.core.BuilderConfig):
  """Which 2D keypoints to pair with the mocap.

  Attributes:
    keypoints: suffix of the 2D file, `data_2d_h36m_<keypoints>.npz`.
    cameras_file: JSON cameras of subjects without published cameras
      (relative paths: inside the manual directory); None: published only.
    train_subjects: subjects of the `train` split (empty: no train split).
    test_subjects: subjects of the `test` split (empty: no test split).
  """
  keypoints: str = "gt"
  cameras_file: Optional[str] = None
  train_subjects: Tuple[str, ...] = h36m_cameras.TRAIN_SUBJECTS
  test_subjects: Tuple[str, ...] = h36m_cameras.TEST_SUBJECTS

  @property
  def ground_truth(self) -> bool:
    return self.keypoints == "gt"


class H36mLifting(tfds.core.GeneratorBasedBuilder):
  """Human3.6M 2D keypoints with camera-frame 3D joints."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release.",
      "1.1.0": "Any action and subject names (cameras file for subjects "
               "without published cameras), subjects per split, checks "
               "of the input values.",
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [
      H36mLiftingConfig(
          name="gt", keypoints="gt",
          description="2D keypoints: the mocap projected by each camera."),
      H36mLiftingConfig(
          name="cpn_ft_h36m_dbb", keypoints="cpn_ft_h36m_dbb",
          description="2D keypoints: CPN detections fine-tuned on H36M."),
  ]
  DEFAULT_CONFIG_NAME = "gt"

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=lifting_features.features(),
        supervised_keys=("keypoints_2d", "keypoints_3d"),
        homepage="http://vision.imar.ro/human3.6m/",
        citation=("@article{h36m_pami, author = {Ionescu, Catalin and "
                  "Papava, Dragos and Olaru, Vlad and Sminchisescu, "
                  "Cristian}, title = {Human3.6M: Large Scale Datasets and "
                  "Predictive Methods for 3D Human Sensing in Natural "
                  "Environments}, journal = {IEEE Transactions on Pattern "
                  "Analysis and Machine Intelligence}, year = {2014}}"),
    )

  def _cameras_path(self, manual_dir: str) -> Optional[str]:
    name = self.builder_config.cameras_file
    if not name:
      return None
    return os.path.join(manual_dir, os.path.expanduser(name))

  def extra_input_files(self, manual_dir: str) -> List[str]:
    """Inputs outside the manual directory's listing that the data depend
    on (the cameras file), for `xsup.data.fingerprint`."""
    path = self._cameras_path(manual_dir)
    return [path] if path else []

  def _split_generators(self, dl_manager):
    manual_dir = os.fspath(dl_manager.manual_dir)
    config = self.builder_config
    path_3d = os.path.join(manual_dir, FILE_3D)
    path_2d = os.path.join(manual_dir,
                           FILE_2D_PATTERN.format(config.keypoints))
    for path in (path_3d, path_2d):
      if not os.path.isfile(path):
        raise FileNotFoundError(
            f"h36m_lifting/{config.name}: {path} not found.\n"
            f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    cameras_path = self._cameras_path(manual_dir)
    user_cameras = (h36m_cameras.load_cameras_file(cameras_path, units="m")
                    if cameras_path else {})
    positions_3d = videopose3d.load_positions_3d(path_3d)
    positions_2d, _ = videopose3d.load_positions_2d(path_2d)
    splits = {}
    used = set()
    for split, subjects in (("train", config.train_subjects),
                            ("test", config.test_subjects)):
      if not subjects:
        continue
      present = _present_subjects(subjects, positions_3d, path_3d, split)
      used.update(present)
      cameras = _subject_cameras(present, user_cameras, cameras_path,
                                 path_3d)
      sequences = videopose3d.align_2d_to_3d(
          positions_3d, positions_2d, subjects=present,
          ground_truth=config.ground_truth, source_3d=path_3d,
          source_2d=path_2d,
          num_cameras={s: len(cameras[s]) for s in present})
      sources = Sources(path_3d, path_2d,
                        cameras_path or "the published Human3.6M cameras")
      splits[split] = self._generate_examples(sequences, cameras, sources)
    if not splits:
      raise ValueError(f"h36m_lifting/{config.name}: train_subjects and "
                       "test_subjects are both empty")
    unused = sorted(set(positions_3d) - used)
    if unused:
      logging.warning("%s: subjects %s are in no split (train_subjects=%s, "
                      "test_subjects=%s)", path_3d, unused,
                      list(config.train_subjects),
                      list(config.test_subjects))
    return splits

  def _generate_examples(
      self, sequences: List[videopose3d.PairedSequence],
      cameras: Dict[str, List[h36m_cameras.Camera]], sources: Sources
  ) -> Iterator[Tuple[str, dict]]:
    for seq in sequences:
      action = h36m_cameras.action_label(seq.action)
      cams = cameras[seq.subject]
      rot = np.stack([c.rot for c in cams])[:, None]  # [V, 1, 3, 3]
      trans = np.stack([c.trans for c in cams])[:, None]  # [V, 1, 3]
      joints = skeleton.convert(seq.positions_3d, "h36m32", "h36m17")
      camera_points = lifting_features.call_padded(
          camera_lib.world_to_camera, joints[None], rot, trans)  # [V,T,17,3]
      _check_values(seq, camera_points, sources)
      for v, cam in enumerate(cams):
        for t in range(joints.shape[0]):
          yield f"{seq.subject}/{seq.action}/{v}/{t}", {
              "keypoints_2d": seq.positions_2d[v][t],
              "keypoints_3d": camera_points[v, t].astype(np.float32),
              "focal": cam.focal,
              "center": cam.center,
              "subject": seq.subject,
              "action": action,
              "camera": v,
              "frame": t,
          }


def _first_bad(mask: np.ndarray) -> Tuple[int, ...]:
  return tuple(int(i) for i in np.argwhere(mask)[0])


def _check_values(seq: videopose3d.PairedSequence, camera_points: np.ndarray,
                  sources: Sources) -> None:
  """Rejects non-finite inputs and joints behind a camera, naming the file,
  subject, action, camera and frame of the first bad value."""
  where = f"subject {seq.subject!r} action {seq.action!r}"
  bad_3d = ~np.all(np.isfinite(seq.positions_3d), axis=(1, 2))
  if bad_3d.any():
    t, = _first_bad(bad_3d)
    raise ValueError(
        f"{sources.path_3d}: non-finite mocap at {where} frame {t} (all "
        f"cameras; {int(bad_3d.sum())} bad frames in this sequence)")
  for v, kp in enumerate(seq.positions_2d):
    bad_2d = ~np.all(np.isfinite(kp), axis=(1, 2))
    if bad_2d.any():
      t, = _first_bad(bad_2d)
      raise ValueError(
          f"{sources.path_2d}: non-finite 2D keypoints at {where} camera "
          f"{v} frame {t} ({int(bad_2d.sum())} bad frames for this camera)")
  behind = np.any(camera_points[..., 2] <= 0, axis=-1)  # [V, T]
  if behind.any():
    v, t = _first_bad(behind)
    raise ValueError(
        f"{sources.path_3d}: joints behind camera {v} at {where} frame {t} "
        f"(camera depth <= 0 in {int(behind.sum())} frames); check the "
        f"cameras of {seq.subject!r} in {sources.cameras} (orientation: "
        "camera-to-world quaternion [w, x, y, z]; translation: camera "
        "centre, world mm) and the mocap units (metres)")


def _subject_cameras(subjects: Sequence[str],
                     user: Dict[str, List[h36m_cameras.Camera]],
                     cameras_path: Optional[str], path_3d: str
                     ) -> Dict[str, List[h36m_cameras.Camera]]:
  """Each subject's cameras: the cameras file's, else the published ones."""
  out = {}
  for subject in subjects:
    if subject in user:
      out[subject] = user[subject]
    elif subject in h36m_cameras.EXTRINSICS:
      out[subject] = h36m_cameras.cameras([subject], units="m")[subject]
    elif cameras_path:
      raise ValueError(
          f"No cameras for subject {subject!r} (in {path_3d}): it is not in "
          f"the cameras file {cameras_path} (subjects there: {sorted(user)})"
          f" nor a Human3.6M subject with published cameras "
          f"({sorted(h36m_cameras.EXTRINSICS)})")
    else:
      raise ValueError(
          f"No cameras for subject {subject!r} (in {path_3d}): it is not a "
          f"Human3.6M subject with published cameras "
          f"({sorted(h36m_cameras.EXTRINSICS)}); give its cameras in a "
          "cameras file (builder config field cameras_file).\n"
          f"{h36m_cameras.CAMERAS_FILE_FORMAT}")
  return out


def _present_subjects(subjects: Sequence[str], positions_3d, path: str,
                      split: str) -> List[str]:
  """The split's subjects found in the mocap file (warns about the others)."""
  present = [s for s in subjects if s in positions_3d]
  missing = [s for s in subjects if s not in positions_3d]
  if not present:
    raise KeyError(f"{path}: none of the {split} subjects {list(subjects)} "
                   f"is in positions_3d (subjects present: "
                   f"{sorted(positions_3d)}); choose them with the config "
                   f"field {split}_subjects")
  if missing:
    logging.warning("%s: %s subjects %s are missing; the split holds %s "
                    "only.", path, split, missing, present)
  return present


Builder = H36mLifting
