"""SO(3): exponential and log maps, rotations about an axis, random rotations.

All functions are batched over leading axes, written in `jax.numpy` and
differentiable (the exponential map uses Taylor expansions near zero so its
gradient is finite at the identity). Rotation matrices act on column vectors:
`x_rotated = R @ x`; for row-vector joint arrays `[..., J, 3]` use
`rotate(joints, R)`.
"""

from typing import Sequence, Union

import jax
import jax.numpy as jnp

Array = jax.Array

_AXES = {"x": 0, "y": 1, "z": 2}


def skew(v: Array) -> Array:
  """[..., 3] -> [..., 3, 3] cross-product matrix: skew(v) @ u = v x u."""
  x, y, z = v[..., 0], v[..., 1], v[..., 2]
  zero = jnp.zeros_like(x)
  return jnp.stack([
      jnp.stack([zero, -z, y], -1),
      jnp.stack([z, zero, -x], -1),
      jnp.stack([-y, x, zero], -1),
  ], -2)


def axis_angle_to_matrix(v: Array) -> Array:
  """Exponential map: axis-angle `[..., 3]` (radians) -> `[..., 3, 3]`.

  R = I + a K + b K^2 with a = sin(t)/t, b = (1 - cos t)/t^2, K = skew(v).
  """
  theta2 = jnp.sum(v * v, axis=-1)[..., None, None]
  small = theta2 < 1e-8
  safe2 = jnp.where(small, 1.0, theta2)
  theta = jnp.sqrt(safe2)
  a = jnp.where(small, 1.0 - theta2 / 6.0, jnp.sin(theta) / theta)
  b = jnp.where(small, 0.5 - theta2 / 24.0, (1.0 - jnp.cos(theta)) / safe2)
  k = skew(v)
  eye = jnp.broadcast_to(jnp.eye(3, dtype=v.dtype), k.shape)
  return eye + a * k + b * (k @ k)


def matrix_to_axis_angle(rot: Array) -> Array:
  """Log map: `[..., 3, 3]` rotation -> axis-angle `[..., 3]`, angle in [0, pi].

  Uses the quaternion of the matrix, which is stable near 0 and near pi.
  """
  quat = matrix_to_quaternion(rot)
  w = quat[..., 0]
  xyz = quat[..., 1:]
  # Keep w >= 0 so the angle is in [0, pi].
  sign = jnp.where(w < 0, -1.0, 1.0)[..., None]
  xyz = xyz * sign
  w = jnp.abs(w)
  n = jnp.linalg.norm(xyz, axis=-1)
  angle = 2.0 * jnp.arctan2(n, w)
  small = n < 1e-7
  scale = jnp.where(small, 2.0 / jnp.maximum(w, 1e-12),
                    angle / jnp.where(small, 1.0, n))
  return xyz * scale[..., None]


def quaternion_to_matrix(q: Array) -> Array:
  """Unit quaternion `[..., 4]` (w, x, y, z) -> `[..., 3, 3]`."""
  q = q / jnp.linalg.norm(q, axis=-1, keepdims=True)
  w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
  return jnp.stack([
      jnp.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w),
                 2 * (x * z + y * w)], -1),
      jnp.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z),
                 2 * (y * z - x * w)], -1),
      jnp.stack([2 * (x * z - y * w), 2 * (y * z + x * w),
                 1 - 2 * (x * x + y * y)], -1),
  ], -2)


def matrix_to_quaternion(rot: Array) -> Array:
  """`[..., 3, 3]` rotation -> unit quaternion `[..., 4]` (w, x, y, z).

  Picks, per matrix, the numerically best of the four standard formulas.
  """
  m = rot
  t = jnp.stack([
      1 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2],
      1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
      1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
      1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2],
  ], -1)
  cands = jnp.stack([
      jnp.stack([t[..., 0], m[..., 2, 1] - m[..., 1, 2],
                 m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
      jnp.stack([m[..., 2, 1] - m[..., 1, 2], t[..., 1],
                 m[..., 1, 0] + m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0]], -1),
      jnp.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1],
                 t[..., 2], m[..., 2, 1] + m[..., 1, 2]], -1),
      jnp.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0],
                 m[..., 2, 1] + m[..., 1, 2], t[..., 3]], -1),
  ], -2)
  best = jnp.argmax(t, axis=-1)
  q = jnp.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :]
  q = q / (2.0 * jnp.sqrt(jnp.maximum(jnp.take_along_axis(
      t, best[..., None], -1), 1e-12)))
  return q / jnp.linalg.norm(q, axis=-1, keepdims=True)


def rotation_about_axis(angle: Array, axis: Union[str, Sequence[float]] = "y"
                        ) -> Array:
  """Rotation by `angle` `[...]` radians about a fixed axis -> `[..., 3, 3]`.

  Args:
    angle: radians, any shape.
    axis: "x", "y", "z" or a 3-vector (normalised here).
  """
  angle = jnp.asarray(angle)
  if isinstance(axis, str):
    if axis not in _AXES:
      raise ValueError(f"axis must be one of {sorted(_AXES)} or a 3-vector, "
                       f"got {axis!r}")
    unit = jnp.zeros(3).at[_AXES[axis]].set(1.0)
  else:
    unit = jnp.asarray(axis, jnp.float32)
    unit = unit / jnp.linalg.norm(unit)
  return axis_angle_to_matrix(angle[..., None] * unit)


def random_rotation(key: Array, shape: Sequence[int] = ()) -> Array:
  """Uniform (Haar) random rotations `[*shape, 3, 3]` from unit quaternions."""
  q = jax.random.normal(key, tuple(shape) + (4,))
  return quaternion_to_matrix(q)


def random_rotation_about_axis(key: Array, shape: Sequence[int] = (),
                               axis: Union[str, Sequence[float]] = "y",
                               max_angle: float = jnp.pi,
                               min_angle: float = None) -> Array:
  """Rotations about `axis` by angles uniform in [min_angle, max_angle].

  `min_angle` defaults to `-max_angle`; use min 0, max 2 pi for a full turn.
  """
  lo = -max_angle if min_angle is None else min_angle
  angle = jax.random.uniform(key, tuple(shape), minval=lo, maxval=max_angle)
  return rotation_about_axis(angle, axis)


def random_rotation_bounded(key: Array, shape: Sequence[int] = (),
                            max_angle: float = jnp.pi / 4) -> Array:
  """Rotations about uniform random axes by angles uniform in [0, max_angle]."""
  k_axis, k_angle = jax.random.split(key)
  axis = jax.random.normal(k_axis, tuple(shape) + (3,))
  axis = axis / jnp.linalg.norm(axis, axis=-1, keepdims=True)
  angle = jax.random.uniform(k_angle, tuple(shape), maxval=max_angle)
  return axis_angle_to_matrix(axis * angle[..., None])


def rotate(points: Array, rot: Array) -> Array:
  """Applies `rot` `[..., 3, 3]` to row-vector points `[..., J, 3]`."""
  return jnp.einsum("...ij,...kj->...ki", rot, points)
