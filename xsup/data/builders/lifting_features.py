"""Feature schema shared by the 2D -> 3D lifting builders, and a helper.

Every lifting builder (`synthetic_lifting`, `h36m_lifting`,
`cmu_mocap_lifting`) yields one example per (frame, camera):

  keypoints_2d  [17, 2] float32  pixels (H36M-17)
  keypoints_3d  [17, 3] float32  camera frame, metres, not root-centred
  focal         [2]     float32  (fx, fy) pixels
  center        [2]     float32  (cx, cy) pixels
  subject       text
  action        text
  camera        int32            camera index
  frame         int32            frame index within the sequence
"""

from typing import Callable

import numpy as np
import tensorflow_datasets as tfds

NUM_JOINTS = 17


def features() -> tfds.features.FeaturesDict:
  """The lifting feature dict (see the module docstring)."""
  return tfds.features.FeaturesDict({
      "keypoints_2d": tfds.features.Tensor(shape=(NUM_JOINTS, 2),
                                           dtype=np.float32),
      "keypoints_3d": tfds.features.Tensor(shape=(NUM_JOINTS, 3),
                                           dtype=np.float32),
      "focal": tfds.features.Tensor(shape=(2,), dtype=np.float32),
      "center": tfds.features.Tensor(shape=(2,), dtype=np.float32),
      "subject": tfds.features.Text(),
      "action": tfds.features.Text(),
      "camera": tfds.features.Scalar(dtype=np.int32),
      "frame": tfds.features.Scalar(dtype=np.int32),
  })


def call_padded(fn: Callable[..., np.ndarray], points: np.ndarray, *args,
                fill: float = 1.0) -> np.ndarray:
  """`fn(points, *args)` with the frame axis padded to a power of two.

  The `xsup.geometry` functions run in jax, which compiles each operation
  anew for every input shape; sequences have all lengths, so the frame axis
  (axis -3 of `[..., T, J, C]`) is padded to the next power of two (with
  `fill`, e.g. a positive depth for projections) to bound the compilations,
  and the result is cut back.

  Returns:
    numpy array, `fn`'s result for the real frames.
  """
  points = np.asarray(points, np.float32)
  t = points.shape[-3]
  size = 1 << max(t - 1, 0).bit_length()
  pad = [(0, 0)] * points.ndim
  pad[-3] = (0, size - t)
  padded = np.pad(points, pad, constant_values=fill)
  return np.asarray(fn(padded, *args))[..., :t, :, :]
