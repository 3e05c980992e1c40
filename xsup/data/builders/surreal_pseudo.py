"""TFDS builder: synthetic-supervision renders with known 3D joints.

Reads the converted render sets of `xsup.data.formats.surreal_pseudo`
(SURREAL frames or renders of sampled poses), resized to the config's patch
size. Split `train`; each example:

  image             [1, S, S, 3] uint8
  mask              [1, S, S, 1] uint8   person mask, 0..255
  joints_2d_patch   [1, 18, 2] float32   patch pixels, `h36m18` layout
  joints_depth      [1, 18] float32      camera depth minus pelvis depth, mm
  affine            [1, 2, 3] float32    render pixels -> patch pixels
  frame             int32                item id of the render set

The detector's normalised targets are x / S * 2 - 1 (same for y) and
depth / rect_3d (rect_3d = 2000 mm in the reference).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Tuple

import numpy as np
import tensorflow_datasets as tfds

from xsup.data.builders import image_features
from xsup.data.builders import patches
from xsup.data.formats import images
from xsup.data.formats import surreal_pseudo
from xsup.geometry import camera

_MANUAL = """\
Point `manual_dir` at the `data/` folder holding the converted render sets:

  <manual_dir>/surreal_h36m_pose/info.npy
  <manual_dir>/surreal_h36m_pose/image/image_000000.png
  <manual_dir>/surreal_h36m_pose/mask/mask_000000.png
  <manual_dir>/surreal_h36m_pose/joints/joint_000000.npy

(`surreal_h36m_pose_pseudo` for the renders of sampled poses). The joint file
format is described in `xsup.data.formats.surreal_pseudo`.
"""

SOURCES = {"surreal": "surreal_h36m_pose", "synth": "surreal_h36m_pose_pseudo"}


@dataclasses.dataclass(eq=False)
class SurrealPseudoConfig(image_features.PatchConfig):
  """Config: patch size and render set folder (under `manual_dir`)."""
  source_dir: str = SOURCES["surreal"]


class SurrealPseudo(tfds.core.GeneratorBasedBuilder):
  """Synthetic person renders with known patch joints and depths."""

  name = "surreal_pseudo"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL
  BUILDER_CONFIGS = [
      SurrealPseudoConfig(name=f"{kind}_{s}", image_size=s, source_dir=src,
                          description=f"{src}, {s}x{s} patches")
      for kind, src in SOURCES.items() for s in image_features.IMAGE_SIZES]
  DEFAULT_CONFIG_NAME = "surreal_256"

  def _info(self) -> tfds.core.DatasetInfo:
    j = surreal_pseudo.NUM_JOINTS
    features = dict(image_features.view_images(
        self.builder_config.image_size, 1))
    features.update({
        "joints_2d_patch": image_features.float_tensor(1, j, 2),
        "joints_depth": image_features.float_tensor(1, j),
        "affine": image_features.float_tensor(1, 2, 3),
        "frame": np.int32,
    })
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__,
        features=tfds.features.FeaturesDict(features),
        homepage="https://www.di.ens.fr/willow/research/surreal/")

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = os.path.join(os.fspath(dl_manager.manual_dir),
                        self.builder_config.source_dir)
    if not os.path.isdir(root):
      raise FileNotFoundError(f"Missing synthetic render folder: {root}")
    layout = surreal_pseudo.SurrealPseudoLayout(root)
    return {"train": self._generate_examples(layout)}

  def _generate_examples(self, layout: surreal_pseudo.SurrealPseudoLayout
                         ) -> Iterator[Tuple[str, dict]]:
    s = self.builder_config.image_size
    for item in surreal_pseudo.read_item_ids(layout.info_path):
      item = int(item)
      image_path = layout.image_path(item)
      mask_path = layout.mask_path(item)
      image = images.read_rgb(image_path)
      mask = images.to_full_range(images.read_mask(mask_path))
      patches.check_same_size(image, mask, image_path, mask_path)
      joints = surreal_pseudo.read_joints(layout.joints_path(item))
      h, w = image.shape[:2]
      # The render is square; pad a non-square one around its centre.
      affine = camera.affine_transform(np.array([w / 2.0, h / 2.0]),
                                       float(max(w, h)), s)
      pixels = surreal_pseudo.joints_to_pixels(joints, w, h)
      yield f"{item:08d}", {
          "image": [patches.warp_affine(image, affine, s)],
          "mask": [patches.warp_affine(mask, affine, s)[..., None]],
          "joints_2d_patch": np.asarray(
              camera.apply_affine(pixels, affine), np.float32)[None],
          "joints_depth": surreal_pseudo.joints_depth_mm(joints).astype(
              np.float32)[None],
          "affine": affine[None],
          "frame": item,
      }


Builder = SurrealPseudo

__all__ = ["Builder", "SurrealPseudo", "SurrealPseudoConfig"]
