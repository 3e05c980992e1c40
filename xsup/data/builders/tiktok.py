"""TFDS builder: TikTok dancing frames with person masks (no joints).

Each example is one frame cut around its mask (see
`xsup.data.formats.tiktok.mask_box`):

  image    [1, S, S, 3] uint8
  mask     [1, S, S, 1] uint8   person mask, 0..255
  affine   [1, 2, 3] float32    image pixels -> patch pixels
  subject  string               video id, e.g. "00034"
  frame    int32                position in the video's sorted frame list

Splits: `train` (41 videos) and `test` (video 326), the first and last 20
frames of each video dropped. Frames whose mask is empty are skipped.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Sequence, Tuple

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from xsup.data.builders import image_features
from xsup.data.builders import patches
from xsup.data.formats import images
from xsup.data.formats import tiktok
from xsup.geometry import camera

_MANUAL = """\
Point `manual_dir` at the `data/` folder holding the TikTok dataset:

  <manual_dir>/TikTok_dataset/00034/images/0001.png
  <manual_dir>/TikTok_dataset/00034/masks/0001.png
"""


@dataclasses.dataclass(eq=False)
class TiktokImagesConfig(image_features.PatchConfig):
  """Config: patch size, videos and trimming.

  Attributes:
    train_videos, test_videos: video ids.
    trim: frames dropped at each end of a video.
  """
  train_videos: Tuple[int, ...] = tiktok.TRAIN_VIDEOS
  test_videos: Tuple[int, ...] = tiktok.TEST_VIDEOS
  trim: int = tiktok.TRIM_FRAMES


class TiktokImages(tfds.core.GeneratorBasedBuilder):
  """TikTok frames and masks, cut around the person."""

  name = "tiktok_images"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL
  BUILDER_CONFIGS = [
      TiktokImagesConfig(name=image_features.size_config_name(s),
                         image_size=s, description=f"{s}x{s} patches")
      for s in image_features.IMAGE_SIZES]
  DEFAULT_CONFIG_NAME = image_features.size_config_name(256)

  def _info(self) -> tfds.core.DatasetInfo:
    features = dict(image_features.view_images(
        self.builder_config.image_size, 1))
    features.update({
        "affine": image_features.float_tensor(1, 2, 3),
        "subject": tfds.features.Text(),
        "frame": np.int32,
    })
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__,
        features=tfds.features.FeaturesDict(features),
        homepage="https://www.yasamin.page/hdnet_tiktok")

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = os.path.join(os.fspath(dl_manager.manual_dir), "TikTok_dataset")
    if not os.path.isdir(root):
      raise FileNotFoundError(f"Missing TikTok folder: {root}")
    cfg = self.builder_config
    return {
        "train": self._generate_examples(root, cfg.train_videos),
        "test": self._generate_examples(root, cfg.test_videos),
    }

  def _generate_examples(self, root: str, videos: Sequence[int]
                         ) -> Iterator[Tuple[str, dict]]:
    cfg = self.builder_config
    s = cfg.image_size
    for video in videos:
      for frame in tiktok.list_frames(root, video, cfg.trim):
        image = images.read_rgb(frame.image_path)
        mask = images.read_mask(frame.mask_path)
        if mask.shape != image.shape[:2]:
          mask = images.resize_nearest(mask, image.shape[:2])
        if not np.any(mask > 127):
          logging.warning("Skipping %s: its mask %s is empty.",
                          frame.image_path, frame.mask_path)
          continue
        box_center, box_size = tiktok.mask_box(mask)
        affine = camera.affine_transform(box_center, box_size, s)
        yield f"{video:05d}_{frame.index:06d}", {
            "image": [patches.warp_affine(image, affine, s)],
            "mask": [patches.warp_affine(mask, affine, s)[..., None]],
            "affine": affine[None],
            "subject": f"{video:05d}",
            "frame": frame.index,
        }


Builder = TiktokImages

__all__ = ["Builder", "TiktokImages", "TiktokImagesConfig"]
