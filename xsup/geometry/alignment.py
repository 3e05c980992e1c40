"""Pose alignment: root, optimal scale and similarity (Procrustes).

All functions take `[..., J, 3]` arrays (numpy or jax) and return jnp arrays.
"""

import jax
import jax.numpy as jnp

Array = jax.Array


def root_align(points: Array, root: int = 0) -> Array:
  """Subtracts joint `root` from `[..., J, C]`."""
  return points - points[..., root:root + 1, :]


def scale_align(pred: Array, target: Array) -> Array:
  """Rescales `pred` by s = <pred, target> / <pred, pred> (per pose)."""
  num = jnp.sum(pred * target, axis=(-1, -2), keepdims=True)
  den = jnp.sum(pred * pred, axis=(-1, -2), keepdims=True)
  return pred * (num / jnp.maximum(den, 1e-12))


def procrustes(pred: Array, target: Array, allow_scale: bool = True,
               allow_reflection: bool = False):
  """Similarity transform that best maps `pred` onto `target` (least squares).

  Finds s, R (det +1), t minimising |target - (s pred R^T + t)|^2 per pose.
  With `allow_reflection`, R is any orthogonal matrix (det +1 or -1): with
  `cov = U S V^T` the optimum is then R = U V^T and
  s = sum(S) / |pred - mean|^2, larger than the proper-rotation scale
  whenever the best orthogonal map is a reflection (e.g. for a
  depth-mirrored pose).

  Args:
    pred: `[..., J, 3]`.
    target: `[..., J, 3]`.
    allow_scale: if False, s = 1 (rigid alignment).
    allow_reflection: if True, R may be a reflection (det -1).
  Returns:
    `(scale [...], rot [..., 3, 3], trans [..., 3])` so that
    `aligned = scale * pred @ rot^T + trans`.
  """
  mu_p = jnp.mean(pred, axis=-2, keepdims=True)
  mu_t = jnp.mean(target, axis=-2, keepdims=True)
  p0 = pred - mu_p
  t0 = target - mu_t
  # cov = sum_j t0_j p0_j^T; optimal R = U D V^T of cov = U S V^T.
  cov = jnp.einsum("...ji,...jk->...ik", t0, p0)
  u, s, vt = jnp.linalg.svd(cov)
  d = jnp.sign(jnp.linalg.det(u @ vt))
  d = jnp.where((d == 0) | allow_reflection, 1.0, d)
  diag = jnp.concatenate([jnp.ones_like(s[..., :2]), d[..., None]], axis=-1)
  rot = (u * diag[..., None, :]) @ vt
  if allow_scale:
    var = jnp.sum(p0 * p0, axis=(-1, -2))
    scale = jnp.sum(s * diag, axis=-1) / jnp.maximum(var, 1e-12)
  else:
    scale = jnp.ones(pred.shape[:-2], pred.dtype)
  trans = mu_t[..., 0, :] - scale[..., None] * jnp.einsum(
      "...ij,...j->...i", rot, mu_p[..., 0, :])
  return scale, rot, trans


def procrustes_align(pred: Array, target: Array,
                     allow_scale: bool = True) -> Array:
  """`pred` `[..., J, 3]` after the optimal similarity onto `target`."""
  scale, rot, trans = procrustes(pred, target, allow_scale)
  return scale[..., None, None] * jnp.einsum(
      "...ij,...kj->...ki", rot, pred) + trans[..., None, :]


def procrustes_scale(pred: Array, target: Array,
                     allow_reflection: bool = False) -> Array:
  """Rescales `pred` by the scale of its similarity alignment onto `target`.

  This is the "calibrate by scale" step of the lifting evaluation: only the
  scale of the Procrustes solution is applied (no rotation, no translation).
  `allow_reflection` takes the scale of the best orthogonal map instead of
  the best proper rotation (see `procrustes`), the published ITES
  evaluation's choice.
  """
  scale, _, _ = procrustes(pred, target, allow_reflection=allow_reflection)
  return pred * scale[..., None, None]
