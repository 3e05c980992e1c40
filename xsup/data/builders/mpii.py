"""TFDS builder: MPII Human Pose single-person patches with 2D joints (no 3D).

Split `validation` (the reference uses MPII only to evaluate 2D joints).
Each example is one person cut from its image with the reference's crop
(annotated centre moved down by 15 x scale pixels, square of side
1.25 x 200 x scale):

  image             [1, S, S, 3] uint8
  mask              [1, S, S, 1] uint8   person mask, 0..255
  joints_2d_patch   [1, 16, 2] float32   patch pixels, `mpii16` layout
  joints_visible    [1, 16] float32      0/1
  affine            [1, 2, 3] float32    image pixels -> patch pixels
  head_size         float32              PCKh head size, image pixels
  image_name        string

As in the reference, people with any joint coordinate below 0 (unlabelled
joints) are left out, and so are people whose mask covers too much or too
little of the image (a mask of another size than its image is resized to
it): the reference counts mask pixels over the three colour
channels, so its 70% / 10% bounds are 70/3% and 10/3% of the pixels; those
are the defaults here.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Tuple

import numpy as np
import tensorflow_datasets as tfds

from xsup.data.builders import image_features
from xsup.data.builders import patches
from xsup.data.formats import images
from xsup.data.formats import mpii_json
from xsup.geometry import camera

_MANUAL = """\
Point `manual_dir` at the `data/` folder holding MPII with the JSON
annotations (mmpose's mpii_annotations.tar) and the person masks:

  <manual_dir>/mpii/annot/mpii_val.json
  <manual_dir>/mpii/annot/mpii_gt_val.mat
  <manual_dir>/mpii/images/000025245.jpg
  <manual_dir>/sam_masks/mpii_val/000025245.jpg
"""


@dataclasses.dataclass(eq=False)
class MpiiImagesConfig(image_features.PatchConfig):
  """Config: patch size and the mask-coverage filter (fractions of pixels)."""
  min_mask_fraction: float = 0.1 / 3.0
  max_mask_fraction: float = 0.7 / 3.0


class MpiiImages(tfds.core.GeneratorBasedBuilder):
  """MPII person patches with 2D joints and masks."""

  name = "mpii_images"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL
  BUILDER_CONFIGS = [
      MpiiImagesConfig(name=image_features.size_config_name(s), image_size=s,
                       description=f"{s}x{s} patches")
      for s in image_features.IMAGE_SIZES]
  DEFAULT_CONFIG_NAME = image_features.size_config_name(256)

  def _info(self) -> tfds.core.DatasetInfo:
    features = dict(image_features.view_images(
        self.builder_config.image_size, 1))
    features.update({
        "joints_2d_patch": image_features.float_tensor(
            1, mpii_json.NUM_JOINTS, 2),
        "joints_visible": image_features.float_tensor(1,
                                                      mpii_json.NUM_JOINTS),
        "affine": image_features.float_tensor(1, 2, 3),
        "head_size": np.float32,
        "image_name": tfds.features.Text(),
    })
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__,
        features=tfds.features.FeaturesDict(features),
        homepage="http://human-pose.mpi-inf.mpg.de/")

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    layout = mpii_json.find_layout(dl_manager.manual_dir, "val")
    return {"validation": self._generate_examples(layout, "val")}

  def _generate_examples(self, layout: mpii_json.MpiiLayout, split: str
                         ) -> Iterator[Tuple[str, dict]]:
    cfg = self.builder_config
    people = mpii_json.read_mpii_json(layout.annotation_path(split))
    gt_path = layout.ground_truth_path(split)
    head_sizes = mpii_json.read_head_sizes(gt_path)
    if head_sizes.shape[0] != len(people):
      raise ValueError(
          f"{gt_path}: {head_sizes.shape[0]} head boxes but "
          f"{layout.annotation_path(split)} has {len(people)} entries")
    s = cfg.image_size
    for i, person in enumerate(people):
      if np.min(person.joints) < 0:
        continue
      mask = images.read_mask(layout.mask_path(person.image))
      coverage = float(np.mean(mask > 127))
      if not cfg.min_mask_fraction <= coverage <= cfg.max_mask_fraction:
        continue
      image = images.read_rgb(layout.image_path(person.image))
      if mask.shape != image.shape[:2]:
        mask = images.resize_nearest(mask, image.shape[:2])
      box_center, box_size = person.crop_box()
      affine = camera.affine_transform(box_center, box_size, s)
      joints = np.asarray(camera.apply_affine(person.joints, affine),
                          np.float32)
      yield f"{i:06d}", {
          "image": [patches.warp_affine(image, affine, s)],
          "mask": [patches.warp_affine(mask, affine, s)[..., None]],
          "joints_2d_patch": joints[None],
          "joints_visible": person.visible[None].astype(np.float32),
          "affine": affine[None],
          "head_size": np.float32(head_sizes[i]),
          "image_name": person.image,
      }


Builder = MpiiImages

__all__ = ["Builder", "MpiiImages", "MpiiImagesConfig"]
