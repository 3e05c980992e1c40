"""Losses of the lifting method (invariant teacher, equivariant student).

Pure functions of arrays. Units are the normalised lifting units of
`xsup.geometry.camera.normalize_2d_lifting` (the camera sits 5 units away).
The training steps in `xsup.train.lifting` compose them with the networks.
"""

from typing import Tuple

import jax
import jax.numpy as jnp

from xsup import skeleton as skel
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


def _h36m17(name: str) -> int:
  return skel.H36M17.index(name)


def chirality_score(pose_3d: Array) -> Array:
  """How well an H36M-17 pose's anatomy agrees with its handedness.

  A depth-mirrored pose (z negated about the root) reprojects onto the same
  2D keypoints but is anatomically reversed: seen from the torso frame
  (forward = (left hip - right hip) x (thorax - pelvis)), its knees bend
  backwards, its elbows forwards and its face looks back. The score sums,
  in the pose's own units, how far the nose lies in front of the thorax,
  each knee in front of its hip-ankle midpoint and each elbow behind its
  shoulder-wrist midpoint. A reflection negates it exactly; rotations and
  translations leave it unchanged. Real poses score > 0 except when every
  limb is straight and the head is level, where the cue is weak.

  Args:
    pose_3d: `[..., 17, 3]` H36M-17 joints (any units, any rigid frame).
  Returns:
    `[...]` score; its sign says which depth orientation is anatomical.
  """
  j = _h36m17
  across = pose_3d[..., j("left_hip"), :] - pose_3d[..., j("right_hip"), :]
  up = pose_3d[..., j("thorax"), :] - pose_3d[..., j("pelvis"), :]
  forward = jnp.cross(across, up)
  forward = forward / jnp.sqrt(
      jnp.sum(jnp.square(forward), axis=-1, keepdims=True) + 1e-12)

  def ahead(point, a, b):
    """Forward offset of `point` from the midpoint of joints a and b."""
    mid = 0.5 * (pose_3d[..., j(a), :] + pose_3d[..., j(b), :])
    return jnp.sum((pose_3d[..., j(point), :] - mid) * forward, axis=-1)

  score = ahead("neck_nose", "thorax", "thorax")
  for side in ("left", "right"):
    score += ahead(f"{side}_knee", f"{side}_hip", f"{side}_ankle")
    score -= ahead(f"{side}_elbow", f"{side}_shoulder", f"{side}_wrist")
  return score


def orient_depth_by_chirality(keypoints_2d: Array, depth: Array) -> Array:
  """Mirrors each pose's relative depth where that makes it anatomical.

  Args:
    keypoints_2d: `[B, 17, 2]` normalised H36M-17 keypoints.
    depth: `[B, 17, 1]` depth (lifting units) of the same poses.
  Returns:
    `[B, 17, 1]`: `depth` where `chirality_score(lift(keypoints_2d, depth))`
    is >= 0, else the root depth minus the relative depth.
  """
  score = chirality_score(lift(keypoints_2d, depth))
  sign = jnp.where(score < 0, -1.0, 1.0).astype(depth.dtype)[:, None, None]
  root = depth[:, :1]
  return root + sign * (depth - root)


# Several depth hypotheses per input ------------------------------------------


def per_sample_mpjpe(pred: Array, target: Array) -> Array:
  """Mean Euclidean distance over joints, one value per pose `[...]`.

  Args:
    pred, target: `[..., J, C]` (broadcastable).
  Returns:
    `[...]`, with the same smooth square root as `mpjpe_loss`.
  """
  sq = jnp.sum(jnp.square(pred - target), axis=-1)
  return jnp.mean(jnp.sqrt(sq + 1e-12), axis=-1)


def winner_takes_all(errors: Array) -> Array:
  """Mean over samples of the smallest error over hypotheses.

  The minimum sends each sample's gradient to its winning hypothesis only
  (ties go to the first), so the hypotheses specialise on the modes of
  their targets instead of averaging them.

  Args:
    errors: `[B, K]` error of each hypothesis of each sample.
  Returns:
    Scalar.
  """
  if errors.ndim != 2:
    raise ValueError(f"winner_takes_all: errors must be [B, K], got shape "
                     f"{tuple(errors.shape)}")
  winner = jnp.argmin(errors, axis=1)
  best = jnp.take_along_axis(errors, winner[:, None], axis=1)[:, 0]
  return jnp.mean(best)


def mirror_depth(depth: Array) -> Array:
  """The depth mirror image `[..., J, 1]`: relative depth negated about the
  root (joint 0). Lifted with the same 2D it projects onto the same
  keypoints."""
  root = depth[..., :1, :]
  return 2.0 * root - depth


def wta_distillation_loss(hypotheses: Array, teacher_depth: Array,
                          with_mirror: bool = False) -> Array:
  """Winner-takes-all distillation of several depth hypotheses.

  Args:
    hypotheses: `[B, K, J, 1]` student depth hypotheses.
    teacher_depth: `[B, J, 1]` target depth.
    with_mirror: also distil the target's depth mirror (`mirror_depth`)
      into its own winner, and average the two terms, so that the
      hypotheses cover both orientations of every target whatever the
      teacher's orientation.
  Returns:
    Scalar: mean over samples of min over hypotheses of the per-sample
    mean absolute depth difference (`distillation_loss` of the winner).
  """
  if hypotheses.ndim != 4 or teacher_depth.ndim != 3:
    raise ValueError("wta_distillation_loss: expected hypotheses [B, K, J, 1] "
                     "and teacher_depth [B, J, 1], got "
                     f"{tuple(hypotheses.shape)} and "
                     f"{tuple(teacher_depth.shape)}")
  loss = winner_takes_all(per_sample_mpjpe(hypotheses,
                                           teacher_depth[:, None]))
  if with_mirror:
    mirrored = mirror_depth(teacher_depth)
    loss = 0.5 * (loss + winner_takes_all(
        per_sample_mpjpe(hypotheses, mirrored[:, None])))
  return loss


def lift_hypotheses(keypoints_2d: Array, hypotheses: Array) -> Array:
  """`[B, J, 2]` and depth hypotheses `[B, K, J, 1]` -> 3D `[B, K, J, 3]`."""
  return lift(keypoints_2d[:, None], hypotheses)


def wta_cycle_loss(relifted_3d: Array, rotated_3d: Array) -> Array:
  """Equivariance cycle of one hypothesis against re-lifted hypotheses.

  Args:
    relifted_3d: `[N, K, J, 3]` hypotheses lifted from the rotated pose's
      projection.
    rotated_3d: `[N, J, 3]` the rotated pose (the cycle's target).
  Returns:
    Scalar: mean over N of the smallest MPJPE over the K re-lifted
    hypotheses (the cycle holds if any hypothesis comes back).
  """
  return winner_takes_all(per_sample_mpjpe(relifted_3d, rotated_3d[:, None]))


def ordered_mirror_distillation_loss(hypotheses: Array, keypoints_2d: Array,
                                     teacher_depth: Array) -> Array:
  """Distillation with fixed roles: hypothesis 0 learns the anatomically
  oriented target (`orient_depth_by_chirality`), hypothesis 1 its depth
  mirror; any others learn nothing.

  The `fixed_roles` distillation of `xsup.train.lifting`, and the warm-up
  of `wta_distillation_loss(..., with_mirror=True)`: started from random
  weights, the winner of each sample is arbitrary, so which output holds
  which orientation changes from input to input; fixed roles make each
  output one smooth function.

  Args:
    hypotheses: `[B, K, J, 1]`, K >= 2.
    keypoints_2d: `[B, J, 2]` the inputs.
    teacher_depth: `[B, J, 1]` the target.
  Returns:
    Scalar: mean of the two hypotheses' `distillation_loss`.
  """
  if hypotheses.ndim != 4 or hypotheses.shape[1] < 2:
    raise ValueError("ordered_mirror_distillation_loss: expected at least 2 "
                     f"hypotheses [B, K, J, 1], got {tuple(hypotheses.shape)}")
  oriented = orient_depth_by_chirality(keypoints_2d, teacher_depth)
  return 0.5 * (distillation_loss(hypotheses[:, 0], oriented) +
                distillation_loss(hypotheses[:, 1], mirror_depth(oriented)))
