"""Small on-disk fixtures of the image datasets for end-to-end runs.

Human3.6M and MPI-INF-3DHP fixtures come from the writers of
`image_builders_test.py`; this module adds a writer of the synthetic-
supervision render sets (`surreal_pseudo`) with procedural poses, and one
call that writes everything the reference XSup configs read.
"""

# The fixture writers of image_builders_test are module-private functions.
# pylint: disable=protected-access

import os

import numpy as np

import image_builders_test as ib
from xsup.data.builders import surreal_pseudo
from xsup.data.synthetic import poses as poses_lib

_RENDER = 96  # render side in pixels


def write_surreal(root: str, source_dir: str, num_items: int, seed: int):
  """A render set of `num_items` items (PNG image + 0/1 mask + joints).

  Joints are procedural H36M-18 poses seen from the side (x, y normalised by
  the render size; depth relative to the pelvis, metres); each image has a
  bright blob on the head and the mask is a disc around the pelvis.

  Returns:
    `[num_items, 18, 3]` the joints written.
  """
  base = os.path.join(root, source_dir)
  rng = np.random.default_rng(seed)
  world = poses_lib.sample_poses_h36m18(rng, num_items)  # mm, Z up
  rel = world - world[:, :1]
  # Orthographic side view: x right = world x, y down = -world z; a 2 m
  # square maps onto the render.
  xy = np.stack([rel[..., 0], -rel[..., 2]], -1) / 1000.0
  depth_m = rel[..., 1] / 1000.0
  joints = np.concatenate([xy, depth_m[..., None]], -1)
  os.makedirs(os.path.join(base, "joints"), exist_ok=True)
  for item in range(num_items):
    px = (joints[item, :, :2] + 1.0) / 2.0 * _RENDER
    ib._save(os.path.join(base, "image", f"image_{item:06d}.png"),
             ib._blob_image(_RENDER, _RENDER, px[10]))
    ib._save(os.path.join(base, "mask", f"mask_{item:06d}.png"),
             ib._disc_mask(_RENDER, _RENDER, px[0], 20) // 255)
    np.save(os.path.join(base, "joints", f"joint_{item:06d}.npy"),
            joints[item])
  np.save(os.path.join(base, "info.npy"), np.arange(num_items))
  return joints


def write_reference_fixtures(root: str, num_renders: int = 8) -> str:
  """Human3.6M (S1, S9), MPI-INF-3DHP (S1, S7, TS1) and both render sets.

  Returns:
    `root`, the manual_dir of every builder the reference configs use.
  """
  root = os.fspath(root)
  for subject in (1, 9):
    ib._write_h36m(root, subject)
  ib._write_mpi_sequence(root, 1, 1, 3, overexposed={(2, 7)})
  ib._write_mpi_sequence(root, 7, 1, 3)
  ib._write_mpi_test(root)
  for k, source in enumerate(sorted(surreal_pseudo.SOURCES.values())):
    write_surreal(root, source, num_renders, seed=10 + k)
  return root
