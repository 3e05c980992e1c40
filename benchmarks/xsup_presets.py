"""Model presets and a stand-in body mask of the X-as-Supervision
benchmarks (no JAX import, so the reference implementation's Python can
read them too).

Each preset overrides fields of the S2 config's `model` (the published head:
depth_dim 64, 3 hypotheses, window 15, 256 head filters) and sets the square
input size in pixels.
"""

import numpy as np

PRESETS = {
    "r18_128": dict(resnet_depth=18, image_size=128),
    "r50_256": dict(resnet_depth=50, image_size=256),
    "demo_64": dict(resnet_depth=18, image_size=64, resnet_width=16,
                    depth_dim=32, neighbor_size=7, head_filters=64),
}


def body_disc(size: int) -> np.ndarray:
  """`[size, size]` bool disc of radius size / 3 at the centre: a stand-in
  body mask."""
  yy, xx = np.mgrid[0:size, 0:size]
  return ((xx - size / 2) ** 2 + (yy - size / 2) ** 2) < (size / 3) ** 2
