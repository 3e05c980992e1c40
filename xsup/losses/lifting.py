"""Losses of the lifting method (invariant teacher, equivariant student).

Pure functions of arrays. Units are the normalised lifting units of
`xsup.geometry.camera.normalize_2d_lifting` (the camera sits 5 units away).
The training steps in `xsup.train.lifting` compose them with the networks.
"""

from typing import Tuple

import jax
import jax.numpy as jnp

from xsup.geometry import camera
from xsup.geometry import rotations

Array = jax.Array

DEPTH_OFFSET = 5.0


def mpjpe_loss(pred: Array, target: Array) -> Array:
  """Mean Euclidean distance over the last axis (scalar).

  Uses sqrt(|d|^2 + 1e-12) so the gradient is finite at zero error.
  """
  sq = jnp.sum(jnp.square(pred - target), axis=-1)
  return jnp.mean(jnp.sqrt(sq + 1e-12))


def project(points: Array) -> Array:
  """`[..., J, 3]` lifting units -> `[..., J, 2]` by xy / clamp(5 + z, 1)."""
  return camera.perspective_unit_projection(points, DEPTH_OFFSET)


def lift(keypoints_2d: Array, depth: Array) -> Array:
  """`[..., J, 2]`, depth `[..., J, 1]` -> 3D `[..., J, 3]` (inverse of project)."""
  return camera.lift_with_depth(keypoints_2d, depth, DEPTH_OFFSET)


def reprojection_loss(camera_shape: Array, keypoints_2d: Array) -> Array:
  """MPJPE between the projection of `[B, J, 3]` and the 2D input `[B, J, 2]`."""
  return mpjpe_loss(project(camera_shape), keypoints_2d)


def invariance_cycle(key: Array, canonical: Array, num_samples: int = 4,
                     align_root: bool = False) -> Tuple[Array, Array]:
  """Inputs and targets of the teacher's rotation-invariance cycle.

  The canonical shape is rotated by `num_samples` random rotations (random
  axis, angle uniform in [0, pi]) and projected; re-lifting the projections
  must give back the canonical shape.

  Args:
    key: PRNG key.
    canonical: `[B, J, 3]` canonical shapes.
    num_samples: rotations per shape.
    align_root: root-centre the canonical shape first (early epochs).
  Returns:
    `(rotated_2d [S*B, J, 2], target [S*B, J, 3])`, sample-major order.
  """
  if align_root:
    canonical = canonical - canonical[:, :1]
  batch = canonical.shape[0]
  rot = rotations.random_rotation_bounded(key, (num_samples * batch,),
                                          max_angle=jnp.pi)
  target = jnp.tile(canonical, (num_samples, 1, 1))
  rotated = jnp.einsum("bjk,bkl->bjl", target, rot)
  return project(rotated), target


def equivariance_cycle(key: Array, shape_3d: Array, num_samples: int = 4
                       ) -> Tuple[Array, Array]:
  """Inputs and targets of the student's rotation-equivariance cycle.

  The lifted 3D pose is rotated about the vertical (y) axis by angles uniform
  in [0, 2 pi) and projected; re-lifting must give the rotated pose.

  Returns:
    `(rotated_2d [S*B, J, 2], rotated_3d [S*B, J, 3])`.
  """
  batch = shape_3d.shape[0]
  rot = rotations.random_rotation_about_axis(
      key, (num_samples * batch,), axis="y", min_angle=0.0,
      max_angle=2 * jnp.pi)
  rotated = jnp.einsum("bjk,bkl->bjl", jnp.tile(shape_3d, (num_samples, 1, 1)),
                       rot)
  return project(rotated), rotated


def distillation_loss(student_depth: Array, teacher_depth: Array) -> Array:
  """MPJPE between `[B, J, 1]` depths (mean absolute difference)."""
  return mpjpe_loss(student_depth, teacher_depth)
