"""Decoding of image and mask files (PIL), with errors that name the file.

Arrays follow the usual image layout: `[H, W, 3]` uint8 RGB for images and
`[H, W]` uint8 for masks (0 = background, larger = person).
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
from PIL import Image
from PIL import UnidentifiedImageError

_RGB_CHANNEL = {"red": 0, "green": 1, "blue": 2}


def _open(path: str, what: str) -> Image.Image:
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Missing {what} file: {path}")
  try:
    image = Image.open(path)
    image.load()
  except (UnidentifiedImageError, OSError, SyntaxError) as e:
    raise ValueError(f"Cannot decode {what} file {path}: {e}") from e
  return image


def read_rgb(path: str) -> np.ndarray:
  """Reads an image file as `[H, W, 3]` uint8 RGB."""
  image = _open(path, "image")
  return np.asarray(image.convert("RGB"), dtype=np.uint8)


def read_mask(path: str, channel: Optional[str] = None) -> np.ndarray:
  """Reads a segmentation mask as `[H, W]` uint8.

  Args:
    path: image file (PNG/JPEG, grayscale or colour).
    channel: None converts colour files to luminance; "red", "green" or
      "blue" keeps that channel of a colour file.
  Returns:
    `[H, W]` uint8 mask as stored in the file (0..255; some datasets store
    0/1, see `to_full_range`).
  """
  image = _open(path, "mask")
  if channel is None:
    return np.asarray(image.convert("L"), dtype=np.uint8)
  if channel not in _RGB_CHANNEL:
    raise ValueError(f"read_mask: channel must be one of {list(_RGB_CHANNEL)}"
                     f" or None, got {channel!r}")
  if image.mode in ("1", "L", "I", "I;16", "F"):
    # A single-channel file: every colour channel equals it.
    return np.asarray(image.convert("L"), dtype=np.uint8)
  return np.asarray(image.convert("RGB"), np.uint8)[
      ..., _RGB_CHANNEL[channel]].copy()


def to_full_range(mask: np.ndarray) -> np.ndarray:
  """Maps a 0/1 mask to 0/255; masks already using the 0..255 range pass."""
  mask = np.asarray(mask)
  if mask.size and int(mask.max()) <= 1:
    return (mask.astype(np.uint8) * 255).astype(np.uint8)
  return mask.astype(np.uint8)


def resize_nearest(mask: np.ndarray, shape_hw: tuple[int, int]
                   ) -> np.ndarray:
  """Resizes a `[h, w]` uint8 mask to `shape_hw` (nearest neighbour)."""
  h, w = shape_hw
  return np.asarray(Image.fromarray(np.asarray(mask, np.uint8)).resize(
      (int(w), int(h)), Image.Resampling.NEAREST), np.uint8)
