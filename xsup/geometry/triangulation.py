"""Multi-view triangulation by the direct linear transform (DLT)."""

from typing import Optional

import jax
import jax.numpy as jnp

Array = jax.Array


def triangulate_dlt(points_2d: Array, proj: Array,
                    weights: Optional[Array] = None) -> Array:
  """Triangulates joints seen by V calibrated views.

  Each view v contributes the rows w_v (u P_v[2] - P_v[0]) and
  w_v (v P_v[2] - P_v[1]); the homogeneous point is the right singular vector
  of the smallest singular value of the stacked [2V, 4] system.

  Args:
    points_2d: `[..., V, J, 2]` pixels.
    proj: `[..., V, 3, 4]` projection matrices (K [R|t]).
    weights: `[..., V, J]` confidences (default 1).
  Returns:
    `[..., J, 3]` points in the frame the projection matrices map from.
  """
  if weights is None:
    weights = jnp.ones(points_2d.shape[:-1], points_2d.dtype)
  u = points_2d[..., 0:1]  # [..., V, J, 1]
  v = points_2d[..., 1:2]
  p0 = proj[..., None, 0, :]  # [..., V, 1, 4]
  p1 = proj[..., None, 1, :]
  p2 = proj[..., None, 2, :]
  w = weights[..., None]
  rows_u = w * (u * p2 - p0)  # [..., V, J, 4]
  rows_v = w * (v * p2 - p1)
  a = jnp.concatenate([rows_u, rows_v], axis=-3)  # [..., 2V, J, 4]
  a = jnp.moveaxis(a, -2, -3)  # [..., J, 2V, 4]
  _, _, vt = jnp.linalg.svd(a, full_matrices=False)
  hom = vt[..., -1, :]
  return hom[..., :3] / hom[..., 3:4]
