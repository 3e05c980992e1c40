"""TFDS builder: Human3.6M multi-view person patches with masks.

Each example is one frame seen by the 4 cameras (views 0-3 = cameras 1-4),
cut around the pelvis (a 2000 mm square facing each camera) at the config's
patch size; features in `image_features` (V = 4, `h36m18` joints).

Splits: `train` (S1, S5, S6, S7, S8; by default without the Eating, Phoning,
Sitting and Smoking sequences, and 200 random frames per sequence) and `test`
(S9, S11; 40 random frames per sequence). The random frames are drawn from a
fixed seed per sequence, so the set is reproducible.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence, Tuple

import tensorflow_datasets as tfds

from xsup.data.builders import image_features
from xsup.data.builders import patches
from xsup.data.formats import h36m_meta
from xsup.data.formats import images

_MANUAL = """\
Point `manual_dir` at the `data/` folder of the preprocessed Human3.6M tree:

  <manual_dir>/hm36/annot/s_01_act_02_subact_01_ca_01/matlab_meta.txt
  <manual_dir>/hm36/images/s_01_act_02_subact_01_ca_01/s_01_act_02_subact_01_ca_01_000001.jpg
  <manual_dir>/sam_masks/h36m/s_01_act_02_subact_01_ca_01/s_01_act_02_subact_01_ca_01_000001.png

(one annot/images/mask folder per subject, action 02-16, subaction 01-02 and
camera 01-04; `sam_masks/hm36` is accepted too). The matlab_meta.txt format
is described in `xsup.data.formats.h36m_meta`.
"""


@dataclasses.dataclass(eq=False)
class H36mImagesConfig(image_features.PatchConfig):
  """Config: patch size and sampling.

  Attributes:
    train_subjects, test_subjects: subject numbers.
    actions: action ids (2..16) to read.
    subactions: subaction ids (1, 2).
    excluded_train_actions: action ids left out of `train` (the reference's
      selected training set drops Eating, Phoning, Sitting, Smoking).
    train_frames, test_frames: random frames per sequence (<= 0: all).
    seed: seed of the frame draw.
    rect_3d_mm: side of the 3D box the patch covers.
  """
  train_subjects: Tuple[int, ...] = h36m_meta.TRAIN_SUBJECTS
  test_subjects: Tuple[int, ...] = h36m_meta.TEST_SUBJECTS
  actions: Tuple[int, ...] = h36m_meta.ACTIONS
  subactions: Tuple[int, ...] = h36m_meta.SUBACTIONS
  excluded_train_actions: Tuple[int, ...] = (4, 6, 9, 11)
  train_frames: int = 200
  test_frames: int = 40
  seed: int = 0
  rect_3d_mm: float = patches.RECT_3D_MM


class H36mImages(tfds.core.GeneratorBasedBuilder):
  """Human3.6M 4-view person patches, masks, cameras and 3D joints."""

  name = "h36m_images"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL
  BUILDER_CONFIGS = [
      H36mImagesConfig(name=image_features.size_config_name(s), image_size=s,
                       description=f"{s}x{s} patches")
      for s in image_features.IMAGE_SIZES]
  DEFAULT_CONFIG_NAME = image_features.size_config_name(256)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=image_features.multiview_features(
            self.builder_config.image_size, len(h36m_meta.CAMERAS)),
        homepage="http://vision.imar.ro/human3.6m/",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    layout = h36m_meta.find_layout(dl_manager.manual_dir)
    cfg = self.builder_config
    return {
        "train": self._generate_examples(
            layout, cfg.train_subjects,
            [a for a in cfg.actions if a not in cfg.excluded_train_actions],
            cfg.train_frames),
        "test": self._generate_examples(layout, cfg.test_subjects,
                                        cfg.actions, cfg.test_frames),
    }

  def _generate_examples(self, layout: h36m_meta.H36MLayout,
                         subjects: Sequence[int], actions: Sequence[int],
                         frames_per_sequence: int
                         ) -> Iterator[Tuple[str, dict]]:
    cfg = self.builder_config
    for subject in subjects:
      for action in actions:
        for subaction in cfg.subactions:
          names = [h36m_meta.sequence_name(subject, action, subaction, c)
                   for c in h36m_meta.CAMERAS]
          metas = [h36m_meta.read_matlab_meta(layout.meta_path(n))
                   for n in names]
          joints = [m.joints_camera() for m in metas]
          num_frames = min(m.num_frames for m in metas)
          frames = h36m_meta.select_frames(
              num_frames, frames_per_sequence,
              (cfg.seed, subject, action, subaction))
          for frame in frames:
            views = []
            for name, meta, cam_joints in zip(names, metas, joints):
              image_path = layout.image_path(name, frame)
              mask_path = layout.mask_path(name, frame)
              image = images.read_rgb(image_path)
              mask = images.read_mask(mask_path)
              patches.check_same_size(image, mask, image_path, mask_path)
              views.append(patches.camera_view(
                  image, mask, cam_joints[frame], meta.focal, meta.center,
                  meta.rot, meta.trans, cfg.image_size,
                  rect_mm=cfg.rect_3d_mm))
            example = patches.stack_views(views)
            example.update(subject=f"S{subject}",
                           action=h36m_meta.ACTION_NAMES[action], frame=frame)
            key = f"s{subject:02d}_act{action:02d}_sub{subaction}_{frame:06d}"
            yield key, example


Builder = H36mImages

__all__ = ["Builder", "H36mImages", "H36mImagesConfig"]
