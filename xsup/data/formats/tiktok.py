"""Reader of the TikTok dancing videos (monocular frames with masks).

Layout (one folder per video, five-digit id):

  <root>/00034/images/0001.png
  <root>/00034/masks/0001.png      person mask, 255 = person

Frames are taken in sorted file-name order; the first and last
`trim` frames of each video are dropped (20 in the reference). The person
box is found from the mask: the image is padded with zeros to a square
(centred), the mask's bounding box is enlarged by 20 pixels on each side
(clipped to the padded image) and the crop is the square of the longer side
around the box centre.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import List, Tuple

import numpy as np

TRAIN_VIDEOS = (34, 35, 36, 37, 40, 42, 43, 44, 45, 58, 59, 61, 62, 63, 76,
                77, 104, 107, 112, 140, 142, 144, 146, 152, 158, 165, 195,
                208, 221, 234, 238, 249, 251, 257, 275, 277, 280, 283, 303,
                313, 323)
TEST_VIDEOS = (326,)
TRIM_FRAMES = 20
BOX_MARGIN = 20


@dataclasses.dataclass(frozen=True)
class TikTokFrame:
  """One frame: `index` is its position in the video's sorted frame list."""
  video: int
  index: int
  image_path: str
  mask_path: str


def video_dir(root: str, video: int) -> str:
  return os.path.join(os.fspath(root), f"{video:05d}")


def list_frames(root: str, video: int, trim: int = TRIM_FRAMES
                ) -> List[TikTokFrame]:
  """Frames of one video, first and last `trim` dropped.

  Raises:
    FileNotFoundError: the video folder or a frame's mask is missing.
  """
  folder = os.path.join(video_dir(root, video), "images")
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"Missing TikTok frame folder: {folder}")
  paths = sorted(glob.glob(os.path.join(folder, "*.png")))
  keep = paths[trim:len(paths) - trim] if trim > 0 else paths
  first = trim if trim > 0 else 0
  frames = []
  for i, path in enumerate(keep):
    mask = os.path.join(video_dir(root, video), "masks",
                        os.path.basename(path))
    if not os.path.isfile(mask):
      raise FileNotFoundError(f"Missing TikTok mask file: {mask} (for frame "
                              f"{path})")
    frames.append(TikTokFrame(video=video, index=first + i, image_path=path,
                              mask_path=mask))
  return frames


def mask_box(mask: np.ndarray, margin: float = BOX_MARGIN,
             threshold: int = 127) -> Tuple[np.ndarray, float]:
  """Square person box from a `[H, W]` mask, in image pixels.

  Follows the module docstring: box of the pixels above `threshold`, grown by
  `margin`, clipped to the image zero-padded (centred) to a square, then the
  square of the longer side around the box centre.

  Returns:
    (centre `[2]` pixels of the unpadded image, side in pixels).
  Raises:
    ValueError: the mask has no person pixel.
  """
  mask = np.asarray(mask)
  ys, xs = np.nonzero(mask > threshold)
  if xs.size == 0:
    raise ValueError("mask_box: the mask has no person pixel")
  h, w = mask.shape[:2]
  side = max(h, w)
  off = np.array([(side - w) // 2, (side - h) // 2], np.float64)
  x0 = max(0.0, xs.min() + off[0] - margin)
  y0 = max(0.0, ys.min() + off[1] - margin)
  x1 = min(float(side), xs.max() + off[0] + margin)
  y1 = min(float(side), ys.max() + off[1] + margin)
  center = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0]) - off
  return center, float(max(x1 - x0, y1 - y0))
