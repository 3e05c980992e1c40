"""Geodesic distance maps of binary masks and the derived per-pixel weights.

Data-side numpy/scipy code (not traceable by jit).

`geodesic_distance` is the exact shortest-path length inside a mask on the
8-connected pixel graph (Dijkstra, `scipy.sparse.csgraph`): horizontal and
vertical steps cost 1 pixel, diagonal steps sqrt(2). A diagonal step is taken
only when both pixels it cuts the corner of are inside the mask, so paths never
squeeze between two background pixels. Along straight axis-aligned or
diagonal corridors this is the Euclidean distance; in open regions it is the
octile distance, at most ~8% above the Euclidean one (fast marching, which
the published weights were computed with, errs less in open regions but
is not exact either).

`geodesic_weight_map` turns a person mask into the weights of the mask
reconstruction losses, as the published data pipeline does (parameters
(a, b, c, d, e), default (2, 1, 3, 20, 0)):

  g    = geodesic distance from the centre(s) inside the mask, 0 outside the
         mask and at mask pixels the centres cannot reach;
  g_bg = Euclidean distance to the nearest mask pixel (0 inside the mask);
  weight = exp(a * g / max(g)) + b + c * g_bg / max(g_bg) + d.

Inside the mask the weight grows from 1 + b + d at the centre to
exp(a) + b + d at the geodesically farthest pixel; outside it is 1 + b + d
plus c times the normalised distance to the body. The centre defaults to the
mask centroid (integer pixel, truncated, as published). The fifth parameter e
is the level the published code gives mask pixels in the background field; only
e = 0 (distance to the mask itself) is supported.

Fallbacks (documented choices): an empty mask gives all-ones weights; a
centre outside the mask is moved to the nearest mask pixel
(`center_outside="snap"`, default) or, as the published code does, the whole
map becomes ones (`center_outside="ones"`). A maximum of zero (single-pixel
mask, mask covering the whole image) contributes a zero normalised term
instead of dividing by zero.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse import csgraph

DEFAULT_WEIGHT_PARAMS = (2.0, 1.0, 3.0, 20.0, 0.0)

# (row offset, column offset, length) of the 4 forward edges of the
# 8-connected grid; the graph is undirected so the backward ones are implied.
_STEPS = ((0, 1, 1.0), (1, 0, 1.0), (1, 1, np.sqrt(2.0)),
          (1, -1, np.sqrt(2.0)))


def _binary_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
  mask = np.asarray(mask)
  if mask.ndim == 3 and mask.shape[-1] == 1:
    mask = mask[..., 0]
  if mask.ndim != 2:
    raise ValueError(f"geodesic.py: {name} must be [H, W] or [H, W, 1], got "
                     f"shape {mask.shape}.")
  return mask > 0


def mask_centroid(mask: np.ndarray) -> np.ndarray:
  """Integer (x, y) = (column, row) centroid of a mask, truncated.

  Args:
    mask: `[H, W]` (or `[H, W, 1]`); pixels > 0 are inside.

  Returns:
    `[2]` int64 (column, row); raises if the mask is empty.
  """
  inside = _binary_mask(mask)
  rows, cols = np.nonzero(inside)
  if rows.size == 0:
    raise ValueError("geodesic.py: mask_centroid of an empty mask.")
  return np.array([int(cols.mean()), int(rows.mean())], np.int64)


def _grid_graph(inside: np.ndarray):
  """Sparse symmetric adjacency of the 8-connected graph on `inside`."""
  h, w = inside.shape
  index = np.arange(h * w).reshape(h, w)
  rows, cols, vals = [], [], []
  for dr, dc, length in _STEPS:
    r0, r1 = 0, h - dr
    c0, c1 = max(0, -dc), w - max(0, dc)
    a = inside[r0:r1, c0:c1]
    b = inside[r0 + dr:r1 + dr, c0 + dc:c1 + dc]
    ok = a & b
    if dr and dc:
      # No corner cutting: both pixels beside the diagonal must be inside.
      ok &= inside[r0 + dr:r1 + dr, c0:c1]
      ok &= inside[r0:r1, c0 + dc:c1 + dc]
    src = index[r0:r1, c0:c1][ok]
    dst = index[r0 + dr:r1 + dr, c0 + dc:c1 + dc][ok]
    rows.append(src)
    cols.append(dst)
    vals.append(np.full(src.shape, length))
  rows = np.concatenate(rows)
  cols = np.concatenate(cols)
  vals = np.concatenate(vals)
  return coo_matrix((vals, (rows, cols)), shape=(h * w, h * w)).tocsr()


def geodesic_distance(mask: np.ndarray,
                      sources: np.ndarray) -> np.ndarray:
  """Shortest-path length inside a mask from the nearest source pixel.

  Args:
    mask: `[H, W]` (or `[H, W, 1]`); pixels > 0 are inside.
    sources: `[K, 2]` integer (x, y) = (column, row) pixels, or a boolean
      `[H, W]` map of source pixels. Sources outside the mask are ignored.

  Returns:
    `[H, W]` float64 distance in pixels; +inf outside the mask and at mask
    pixels no source reaches (also everywhere if no source is inside).
  """
  inside = _binary_mask(mask)
  h, w = inside.shape
  sources = np.asarray(sources)
  if sources.dtype == bool and sources.shape[:2] == (h, w):
    src_map = sources.reshape(h, w)
  else:
    if sources.ndim != 2 or sources.shape[-1] != 2:
      raise ValueError("geodesic.py: sources must be [K, 2] (x, y) pixels or "
                       f"a boolean [H, W] map; got shape {sources.shape}.")
    pts = sources.astype(np.int64)
    keep = ((pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0)
            & (pts[:, 1] < h))
    src_map = np.zeros((h, w), bool)
    src_map[pts[keep, 1], pts[keep, 0]] = True
  src_map = src_map & inside
  out = np.full((h, w), np.inf)
  if not src_map.any():
    return out
  graph = _grid_graph(inside)
  dist = csgraph.dijkstra(graph, directed=False,
                          indices=np.flatnonzero(src_map), min_only=True)
  out = dist.reshape(h, w)
  out[~inside] = np.inf
  return out


def _normalised(values: np.ndarray) -> np.ndarray:
  peak = values.max() if values.size else 0.0
  return values / peak if peak > 0 else np.zeros_like(values)


def geodesic_weight_map(mask: np.ndarray,
                        centers: Optional[np.ndarray] = None,
                        params: Sequence[float] = DEFAULT_WEIGHT_PARAMS,
                        center_outside: str = "snap") -> np.ndarray:
  """Per-pixel loss weights from geodesic distances (see module docstring).

  Args:
    mask: `[H, W]` or `[H, W, 1]` person mask; pixels > 0 are inside.
    centers: `[K, 2]` (x, y) pixel centres (truncated to integers), e.g.
      patch joints; defaults to the mask centroid.
    params: (a, b, c, d, e) as in the module docstring; e must be 0.
    center_outside: "snap" (move a centre outside the mask to the nearest
      mask pixel) or "ones" (return all-ones weights, published behaviour).

  Returns:
    float32 weights, same shape as `mask`.
  """
  mask_arr = np.asarray(mask)
  inside = _binary_mask(mask_arr)
  if len(params) != 5:
    raise ValueError("geodesic.py: params must be (a, b, c, d, e), got "
                     f"{tuple(params)}.")
  a, b, c, d, e = (float(p) for p in params)
  if e != 0.0:
    raise ValueError("geodesic.py: only params[4] == 0 (background distance "
                     f"measured from the mask) is supported, got {e}.")
  if center_outside not in ("snap", "ones"):
    raise ValueError("geodesic.py: center_outside must be 'snap' or 'ones', "
                     f"got {center_outside!r}.")
  ones = np.ones(mask_arr.shape, np.float32)
  if not inside.any():
    return ones
  if centers is None:
    centers = mask_centroid(inside)[None]
  centers = np.floor(np.asarray(centers, np.float64)).astype(np.int64)
  centers = centers.reshape(-1, 2)
  h, w = inside.shape
  centers[:, 0] = np.clip(centers[:, 0], 0, w - 1)
  centers[:, 1] = np.clip(centers[:, 1], 0, h - 1)
  outside = ~inside[centers[:, 1], centers[:, 0]]
  if outside.any():
    if center_outside == "ones":
      return ones
    # Nearest mask pixel of each centre (Euclidean).
    _, (near_r, near_c) = ndimage.distance_transform_edt(
        ~inside, return_indices=True)
    rows, cols = centers[outside, 1], centers[outside, 0]
    centers[outside, 0] = near_c[rows, cols]
    centers[outside, 1] = near_r[rows, cols]
  geo = geodesic_distance(inside, centers)
  geo = np.where(np.isfinite(geo), geo, 0.0)
  background = ndimage.distance_transform_edt(~inside)
  weights = (np.exp(a * _normalised(geo)) + b + c * _normalised(background)
             + d)
  return weights.astype(np.float32).reshape(mask_arr.shape)
