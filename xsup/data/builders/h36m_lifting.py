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
  subject: "S1" ... "S11".
  action: canonical action name (one of `h36m_cameras.ACTIONS`).
  camera: int32 camera index 0..3.
  frame: int32 frame index within the sequence.

Configs: `gt` (2D = projected mocap) and `cpn_ft_h36m_dbb` (CPN detections
fine-tuned on Human3.6M). Splits: `train` (S1, S5, S6, S7, S8) and `test`
(S9, S11).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, Iterator, List, Sequence, Tuple

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
Only the 2D file of the chosen config is needed.
"""


@dataclasses.dataclass
class H36mLiftingConfig(tfds.core.BuilderConfig):
  """Which 2D keypoints to pair with the mocap.

  Attributes:
    keypoints: suffix of the 2D file, `data_2d_h36m_<keypoints>.npz`.
  """
  keypoints: str = "gt"

  @property
  def ground_truth(self) -> bool:
    return self.keypoints == "gt"


class H36mLifting(tfds.core.GeneratorBasedBuilder):
  """Human3.6M 2D keypoints with camera-frame 3D joints."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
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

  def _split_generators(self, dl_manager):
    manual_dir = dl_manager.manual_dir
    config = self.builder_config
    path_3d = os.path.join(os.fspath(manual_dir), FILE_3D)
    path_2d = os.path.join(os.fspath(manual_dir),
                           FILE_2D_PATTERN.format(config.keypoints))
    for path in (path_3d, path_2d):
      if not os.path.isfile(path):
        raise FileNotFoundError(
            f"h36m_lifting/{config.name}: {path} not found.\n"
            f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    positions_3d = videopose3d.load_positions_3d(path_3d)
    positions_2d, _ = videopose3d.load_positions_2d(path_2d)
    splits = {}
    for split, subjects in (("train", h36m_cameras.TRAIN_SUBJECTS),
                            ("test", h36m_cameras.TEST_SUBJECTS)):
      present = _present_subjects(subjects, positions_3d, path_3d, split)
      sequences = videopose3d.align_2d_to_3d(
          positions_3d, positions_2d, subjects=present,
          ground_truth=config.ground_truth, source_3d=path_3d,
          source_2d=path_2d, num_cameras=h36m_cameras.NUM_CAMERAS)
      splits[split] = self._generate_examples(
          sequences, h36m_cameras.cameras(present, units="m"))
    return splits

  def _generate_examples(
      self, sequences: List[videopose3d.PairedSequence],
      cameras: Dict[str, List[h36m_cameras.Camera]]
  ) -> Iterator[Tuple[str, dict]]:
    for seq in sequences:
      action = h36m_cameras.canonical_action(seq.action)
      cams = cameras[seq.subject]
      rot = np.stack([c.rot for c in cams])[:, None]  # [V, 1, 3, 3]
      trans = np.stack([c.trans for c in cams])[:, None]  # [V, 1, 3]
      joints = skeleton.convert(seq.positions_3d, "h36m32", "h36m17")
      camera_points = lifting_features.call_padded(
          camera_lib.world_to_camera, joints[None], rot, trans)  # [V,T,17,3]
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


def _present_subjects(subjects: Sequence[str], positions_3d, path: str,
                      split: str) -> List[str]:
  """The split's subjects found in the mocap file (warns about the others)."""
  present = [s for s in subjects if s in positions_3d]
  missing = [s for s in subjects if s not in positions_3d]
  if not present:
    raise KeyError(f"{path}: none of the {split} subjects {list(subjects)} "
                   f"is in positions_3d (subjects present: "
                   f"{sorted(positions_3d)})")
  if missing:
    logging.warning("%s: %s subjects %s are missing; the split holds %s "
                    "only.", path, split, missing, present)
  return present


Builder = H36mLifting
