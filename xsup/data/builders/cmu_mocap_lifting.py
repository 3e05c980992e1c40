"""`cmu_mocap_lifting`: CMU motion capture seen by virtual cameras, 2D/3D pairs.

Reads CMU Graphics Lab motion capture files from the manual directory
(searched recursively): cgspeed BVH conversions (`*.bvh`, repaired as in
`xsup.data.formats.bvh.cgspeed_h36m17`) and Acclaim pairs (`*.amc` with the
subject's `*.asf`), converts each clip to H36M-17 joints (mm, Z up) at
30 fps, and films it with 4 virtual cameras on a ring around the clip's
mean pelvis (`xsup.data.synthetic.cameras.ring_rig`: 5000 mm away, 1500 mm
high, `H36M_LIKE` intrinsics, no distortion).

Features (shared schema of the lifting builders, `lifting_features`):
  keypoints_2d: `[17, 2]` float32 pixels (exact projections).
  keypoints_3d: `[17, 3]` float32 camera frame, metres (not root-centred).
  focal, center: `[2]` float32 pixels.
  subject: CMU subject id, e.g. "131".
  action: the clip id, e.g. "131_01".
  camera: int32 camera index 0..3.
  frame: int32 frame index within the clip at 30 fps.

Splits: one per clip, `clip_<id>` (e.g. `clip_131_01`); combine them with
TFDS split arithmetic, e.g. `clip_131_01+clip_131_02`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Dict, Iterator, List, Optional, Tuple

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from xsup.data.builders import lifting_features
from xsup.data.formats import asf_amc
from xsup.data.formats import bvh
from xsup.data.formats import cmu
from xsup.data.synthetic import cameras
from xsup.geometry import camera as camera_lib

AZIMUTHS_DEG = (45.0, 135.0, 225.0, 315.0)
CAMERA_DISTANCE_MM = 5000.0
CAMERA_HEIGHT_MM = 1500.0
INTRINSICS = cameras.H36M_LIKE
# Frames with a joint closer than this to a camera's image plane are left
# out of that camera's examples (their projection would be meaningless).
MIN_DEPTH_MM = 300.0

_MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put CMU motion capture files (http://mocap.cs.cmu.edu/) in the manual
directory, in any sub-folders:
  * cgspeed BVH conversions (`<subject>_<trial>.bvh`, e.g. `131_01.bvh`,
    "3dsMax-friendly" or "MotionBuilder-friendly" release), and/or
  * Acclaim files: each `<subject>_<trial>.amc` next to its subject's
    skeleton `<subject>.asf` (as in CMU's `allasfamc` archive).
Each clip becomes a split `clip_<subject>_<trial>`. The data are free for
research; cite the database as CMU asks: "The data used in this project was
obtained from mocap.cs.cmu.edu. The database was created with funding from
NSF EIA-0196217."
"""


@dataclasses.dataclass(frozen=True)
class Clip:
  """One motion file of the manual directory.

  Attributes:
    clip_id: file stem, e.g. "131_01".
    subject: CMU subject id, e.g. "131".
    path: the `.bvh` or `.amc` file.
    asf_path: the skeleton of an `.amc` file (None for BVH).
  """
  clip_id: str
  subject: str
  path: str
  asf_path: Optional[str] = None

  @property
  def split_name(self) -> str:
    return "clip_" + re.sub(r"\W", "_", self.clip_id)


def _suffix(path: str) -> str:
  return os.path.splitext(path)[1].lower()


def _stem(path: str) -> str:
  return os.path.splitext(os.path.basename(path))[0]


def find_clips(directory) -> List[Clip]:
  """All BVH and AMC clips below `directory` (a local folder), by clip id.

  Raises:
    FileNotFoundError: no `.bvh` / `.amc` file at all, or an `.amc` file
      whose subject's `.asf` is not beside it.
    ValueError: two files give the same split name.
  """
  root = os.fspath(directory)
  files = []
  for folder, _, names in os.walk(root):
    files += [os.path.join(folder, n) for n in names]
  motion = sorted(p for p in files if _suffix(p) in (".bvh", ".amc"))
  if not motion:
    raise FileNotFoundError(
        f"cmu_mocap_lifting: no .bvh or .amc files under {root}.\n"
        f"{_MANUAL_DOWNLOAD_INSTRUCTIONS}")
  clips: List[Clip] = []
  for path in motion:
    stem = _stem(path)
    subject = stem.split("_")[0]
    if _suffix(path) == ".bvh":
      clips.append(Clip(stem, subject, path))
      continue
    asf = _find_asf(path, subject)
    clips.append(Clip(stem, _stem(asf), path, asf))
  by_split: Dict[str, Clip] = {}
  for clip in clips:
    if clip.split_name in by_split:
      raise ValueError(
          f"cmu_mocap_lifting: {clip.path} and "
          f"{by_split[clip.split_name].path} both give split "
          f"{clip.split_name!r}; keep one of them")
    by_split[clip.split_name] = clip
  return sorted(clips, key=lambda c: c.clip_id)


def _find_asf(amc_path: str, subject: str) -> str:
  """The skeleton of an AMC file: `<subject>.asf` beside it, or the only one."""
  folder = os.path.dirname(amc_path)
  siblings = sorted(os.path.join(folder, n) for n in os.listdir(folder)
                    if _suffix(n) == ".asf")
  for p in siblings:
    if _stem(p).lower() == subject.lower():
      return p
  if len(siblings) == 1:
    return siblings[0]
  raise FileNotFoundError(
      f"cmu_mocap_lifting: {amc_path} has no skeleton: expected "
      f"{os.path.join(folder, subject + '.asf')} (AMC files need the ASF of "
      "their subject in the same folder); ASF files there: "
      f"{[os.path.basename(p) for p in siblings]}")


def load_clip(clip: Clip) -> np.ndarray:
  """H36M-17 joints of a clip: `[T, 17, 3]` float32 mm, Z up, 30 fps."""
  if clip.asf_path is None:
    return bvh.load_cgspeed_h36m17(clip.path, target_fps=cmu.TARGET_FPS)
  return asf_amc.load_h36m17(clip.asf_path, clip.path,
                             target_fps=cmu.TARGET_FPS)


def film(joints: np.ndarray) -> Dict[str, np.ndarray]:
  """Views `[T, 17, 3]` world mm joints with the ring of virtual cameras.

  Returns:
    `keypoints_2d [V, T, 17, 2]` px, `keypoints_3d [V, T, 17, 3]` camera
    mm, `rot [V, 3, 3]`, `trans [V, 3]` (mm), `focal [2]`, `center [2]`.
  """
  target = joints[:, 0].mean(axis=0)
  rot, trans = cameras.ring_rig(target, AZIMUTHS_DEG,
                                distance=CAMERA_DISTANCE_MM,
                                height=CAMERA_HEIGHT_MM)
  focal = np.asarray(INTRINSICS.focal, np.float32)
  center = np.asarray(INTRINSICS.center, np.float32)
  cam = lifting_features.call_padded(
      camera_lib.world_to_camera, joints[None], rot[:, None], trans[:, None])
  kp2d = lifting_features.call_padded(camera_lib.project, cam, focal, center)
  return {"keypoints_2d": kp2d.astype(np.float32),
          "keypoints_3d": cam.astype(np.float32), "rot": rot,
          "trans": trans, "focal": focal, "center": center}


class CmuMocapLifting(tfds.core.GeneratorBasedBuilder):
  """CMU mocap clips as 2D/3D lifting pairs from 4 virtual cameras."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=lifting_features.features(),
        supervised_keys=("keypoints_2d", "keypoints_3d"),
        homepage="http://mocap.cs.cmu.edu/",
        citation=("The data used in this project was obtained from "
                  "mocap.cs.cmu.edu. The database was created with funding "
                  "from NSF EIA-0196217."),
    )

  def _split_generators(self, dl_manager):
    clips = find_clips(dl_manager.manual_dir)
    return {clip.split_name: self._generate_examples(clip) for clip in clips}

  def _generate_examples(self, clip: Clip) -> Iterator[Tuple[str, dict]]:
    joints = load_clip(clip)
    views = film(joints)
    depth_ok = views["keypoints_3d"][..., 2].min(axis=-1) >= MIN_DEPTH_MM
    for v in range(len(AZIMUTHS_DEG)):
      if not depth_ok[v].all():
        logging.warning("%s: camera %d: %d frames come closer than %g mm "
                        "and are left out.", clip.path, v,
                        int((~depth_ok[v]).sum()), MIN_DEPTH_MM)
      for t in np.flatnonzero(depth_ok[v]):
        yield f"{clip.clip_id}/{v}/{t}", {
            "keypoints_2d": views["keypoints_2d"][v, t],
            "keypoints_3d": views["keypoints_3d"][v, t] / np.float32(1000.0),
            "focal": views["focal"],
            "center": views["center"],
            "subject": clip.subject,
            "action": clip.clip_id,
            "camera": v,
            "frame": int(t),
        }


Builder = CmuMocapLifting
