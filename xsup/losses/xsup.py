"""X-as-Supervision losses (pure functions, jnp).

Shapes: joint predictions carry the hypothesis axis second,
`[B, Hyp, J, 3]`; masks are NHWC `[B, S, S, 1]` (any matching shapes work).
Where a loss is "the minimum over hypotheses" it is, as published, the
minimum of per-hypothesis batch means (one hypothesis wins for the whole
batch), except for the adversarial losses, which take the minimum per sample
and then average over the batch.

Discriminator space: everything fed to the pose discriminator (predictions
and real poses) goes through `to_discriminator_space`: root-relative joints
in metres, in the axes of the input (for normalised patch coordinates the
camera-aligned patch axes: x right, y down, z away from the camera). The
published model fed normalised patch coordinates in its discriminator update
and world metres in its generator update; here both use this one space.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from xsup import skeleton as skel
from xsup.geometry import patch
from xsup.geometry import rotations

Array = jax.Array

_H18 = skel.H36M18
_MM_TO_M = 1e-3


def _check_same_shape(a: Array, b: Array, fn: str, names: str) -> None:
  if a.shape != b.shape:
    raise ValueError(f"xsup.py: {fn}: {names} must have the same shape, got "
                     f"{tuple(a.shape)} and {tuple(b.shape)}.")


# ---------------------------------------------------------------------------
# Masks.


def mask_reconstruction_loss(rendered: Array, mask: Array,
                             weights: Optional[Array] = None,
                             use_clip: bool = False,
                             reference_clip: bool = False,
                             clip_threshold: float = 0.1) -> Array:
  """Mean squared error between a rendered line mask and the person mask.

  Args:
    rendered: `[B, S, S, 1]` rendered mask in [0, 1].
    mask: `[B, S, S, 1]` segmentation mask in [0, 1].
    weights: optional per-pixel weights, broadcastable to `rendered` (e.g.
      `xsup.geometry.geodesic.geodesic_weight_map`); each squared error is
      multiplied by its weight.
    use_clip: count only pixels where `rendered > clip_threshold`; the loss is
      the mean of the (weighted) squared errors over those pixels of the whole
      batch (0 when there are none). The selection carries no gradient.
    reference_clip: with `use_clip`, reproduce the published value instead:
      without weights the plain MSE times the fraction of pixels above the
      threshold; with weights the mean over all pixels of
      weight * squared error * [rendered > threshold]. Ignored without
      `use_clip`.
    clip_threshold: the selection threshold (0.1 published).

  Returns:
    Scalar loss.
  """
  _check_same_shape(rendered, mask, "mask_reconstruction_loss",
                    "rendered and mask")
  sq = jnp.square(rendered - mask)
  weighted = sq if weights is None else sq * weights
  if not use_clip:
    return jnp.mean(weighted)
  keep = jax.lax.stop_gradient(
      (rendered > clip_threshold).astype(sq.dtype))
  if reference_clip:
    if weights is None:
      return jnp.mean(sq) * jnp.mean(keep)
    return jnp.mean(weighted * keep)
  keep = jnp.broadcast_to(keep, weighted.shape)
  return jnp.sum(weighted * keep) / jnp.maximum(jnp.sum(keep), 1.0)


def physique_reconstruction_loss(pred_body_mask: Array, mask: Array,
                                 weights: Optional[Array] = None) -> Array:
  """MSE between the physique network's body mask and the person mask.

  Args:
    pred_body_mask: `[B, S, S, 1]` in (0, 1).
    mask: `[B, S, S, 1]` in [0, 1].
    weights: optional per-pixel weights broadcastable to the masks (mean of
      weight * squared error over all pixels).

  Returns:
    Scalar loss.
  """
  _check_same_shape(pred_body_mask, mask, "physique_reconstruction_loss",
                    "pred_body_mask and mask")
  sq = jnp.square(pred_body_mask - mask)
  if weights is not None:
    sq = sq * weights
  return jnp.mean(sq)


# ---------------------------------------------------------------------------
# Synthetic supervision.


def synthetic_supervision_loss(pred: Array, target: Array,
                               valid: Optional[Array] = None,
                               per_hypothesis: bool = False) -> Array:
  """MSE to known joints of synthetic renders, minimum over hypotheses.

  Args:
    pred: `[B, Hyp, J, 3]` normalised patch coordinates.
    target: `[B, J, 3]` normalised patch coordinates.
    valid: optional `[B]` or `[B, J]` weights (1 = counts); the mean is then
      taken over the valid joints (times 3 coordinates).
    per_hypothesis: return the `[Hyp]` per-hypothesis losses instead.

  Returns:
    Scalar: min over hypotheses of the batch MSE (or `[Hyp]`).
  """
  if pred.ndim != 4 or target.ndim != 3 or pred.shape[:1] + pred.shape[2:] \
      != target.shape:
    raise ValueError("xsup.py: synthetic_supervision_loss expects pred "
                     "[B, Hyp, J, C] and target [B, J, C]; got "
                     f"{tuple(pred.shape)} and {tuple(target.shape)}.")
  sq = jnp.square(pred - target[:, None])                   # [B, Hyp, J, C]
  if valid is None:
    per_hyp = jnp.mean(sq, axis=(0, 2, 3))
  else:
    valid = jnp.asarray(valid, sq.dtype)
    if valid.ndim == 1:
      valid = jnp.broadcast_to(valid[:, None], target.shape[:2])
    if valid.shape != target.shape[:2]:
      raise ValueError("xsup.py: synthetic_supervision_loss: valid must be "
                       f"[B] or [B, J]; got {tuple(valid.shape)}.")
    w = valid[:, None, :, None]
    count = jnp.sum(valid) * sq.shape[-1]
    per_hyp = jnp.sum(sq * w, axis=(0, 2, 3)) / jnp.maximum(count, 1e-8)
  return per_hyp if per_hypothesis else jnp.min(per_hyp)


# ---------------------------------------------------------------------------
# Symmetry (H36M-18 joints in world millimetres).


def _check_h36m18(joints: Array, fn: str) -> None:
  if joints.ndim != 4 or joints.shape[-2:] != (_H18.num_joints, 3):
    raise ValueError(f"xsup.py: {fn} expects H36M-18 joints [B, Hyp, 18, 3] "
                     f"in mm, got shape {tuple(joints.shape)}.")


def _bone_pairs(reference_pairs: bool):
  """Two `[P, 2]` (child, parent) index arrays of the bones compared."""
  if reference_pairs:
    # Published pairing: each limb's lower bone against its upper bone on
    # the same side (wrist-elbow vs elbow-shoulder, ankle-knee vs knee-hip).
    names = (("right_wrist", "right_elbow", "right_shoulder"),
             ("left_wrist", "left_elbow", "left_shoulder"),
             ("right_ankle", "right_knee", "right_hip"),
             ("left_ankle", "left_knee", "left_hip"))
    first, second = [], []
    for end, mid, root in names:
      first.append((_H18.index(end), _H18.index(mid)))
      second.append((_H18.index(mid), _H18.index(root)))
    return np.array(first), np.array(second)
  # Mirrored bones between two lateral joints: thigh, shin, upper arm and
  # forearm (hip-pelvis and shoulder-thorax bones are left out).
  lateral = set(_H18.left_joints) | set(_H18.right_joints)
  pairs = [(r, l) for r, l in skel.limb_pairs(_H18)
           if r[0] in lateral and r[1] in lateral]
  return (np.array([r for r, _ in pairs]), np.array([l for _, l in pairs]))


def bone_symmetry_loss(joints_world_mm: Array, per_hypothesis: bool = False,
                       reference_pairs: bool = False) -> Array:
  """Left/right limb bone-length agreement, minimum over hypotheses.

  The compared bones are the mirrored limb pairs of H36M-18
  (`xsup.skeleton.limb_pairs` restricted to bones between two lateral
  joints: upper arm, forearm, thigh, shin; 4 pairs). Lengths in
  metres (mm * 1e-3); loss = mean over batch and pairs of the squared length
  difference.

  Args:
    joints_world_mm: `[B, Hyp, 18, 3]` world (or any metric) joints, mm.
    per_hypothesis: return `[Hyp]` instead of the minimum.
    reference_pairs: compare, as the published code does, each limb's lower
      bone with its upper bone on the same side instead of left with right.

  Returns:
    Scalar (or `[Hyp]`), metres squared.
  """
  _check_h36m18(joints_world_mm, "bone_symmetry_loss")
  first, second = _bone_pairs(reference_pairs)
  joints = joints_world_mm * _MM_TO_M

  def lengths(bones):
    vec = joints[..., bones[:, 0], :] - joints[..., bones[:, 1], :]
    return jnp.sqrt(jnp.sum(vec * vec, axis=-1) + 1e-12)

  per_hyp = jnp.mean(jnp.square(lengths(first) - lengths(second)),
                     axis=(0, 2))
  return per_hyp if per_hypothesis else jnp.min(per_hyp)


def keypoint_symmetry_loss(joints_world_mm: Array,
                           per_hypothesis: bool = False) -> Array:
  """Thorax at mid-shoulders and pelvis at mid-hips, minimum over hypotheses.

  Args:
    joints_world_mm: `[B, Hyp, 18, 3]` H36M-18 joints in mm.
    per_hypothesis: return `[Hyp]` instead of the minimum.

  Returns:
    Scalar (or `[Hyp]`): mean over batch, the two centres and 3 coordinates of
    the squared offset in metres.
  """
  _check_h36m18(joints_world_mm, "keypoint_symmetry_loss")
  joints = joints_world_mm * _MM_TO_M
  left = np.array([_H18.index("left_shoulder"), _H18.index("left_hip")])
  right = np.array([_H18.index("right_shoulder"), _H18.index("right_hip")])
  centre = np.array([_H18.index("thorax"), _H18.index("pelvis")])
  mid = 0.5 * (joints[..., left, :] + joints[..., right, :])
  per_hyp = jnp.mean(jnp.square(mid - joints[..., centre, :]), axis=(0, 2, 3))
  return per_hyp if per_hypothesis else jnp.min(per_hyp)


def symmetry_loss(joints_world_mm: Array, bone_weight: float = 0.1,
                  keypoint_weight: float = 0.1,
                  reference_pairs: bool = False) -> Array:
  """Published combination: min over hypotheses of the weighted sum.

  min_h (bone_weight * bone_h + keypoint_weight * keypoint_h), with the
  per-hypothesis terms of `bone_symmetry_loss` and `keypoint_symmetry_loss`.

  Args:
    joints_world_mm: `[B, Hyp, 18, 3]` H36M-18 joints in mm.
    bone_weight: weight of the bone-length term.
    keypoint_weight: weight of the keypoint term.
    reference_pairs: see `bone_symmetry_loss`.

  Returns:
    Scalar.
  """
  bone = bone_symmetry_loss(joints_world_mm, per_hypothesis=True,
                            reference_pairs=reference_pairs)
  kp = keypoint_symmetry_loss(joints_world_mm, per_hypothesis=True)
  return jnp.min(bone_weight * bone + keypoint_weight * kp)


# ---------------------------------------------------------------------------
# Least-squares GAN.


def _squeeze_scores(scores: Array, fn: str, name: str):
  """`[B, 1]` -> (`[B]`, None); `[B, Hyp, 1]` -> (`[B, Hyp]`, 1).

  The second value is the hypothesis axis to minimise over, if any.
  """
  if scores.ndim == 2 and scores.shape[-1] == 1:
    return scores[:, 0], None
  if scores.ndim == 3 and scores.shape[-1] == 1:
    return scores[..., 0], 1
  raise ValueError(f"xsup.py: {fn}: {name} must be [B, 1] or [B, Hyp, 1], "
                   f"got shape {tuple(scores.shape)}.")


def lsgan_generator_loss(scores_fake: Array) -> Array:
  """Generator loss: mean over batch of min_h (D(pred_h) - 1)^2.

  Gradients flow through the scores to the predictions; the caller keeps the
  discriminator's parameters fixed in this update.

  Args:
    scores_fake: `[B, Hyp, 1]` discriminator scores of the predictions
      (`[B, 1]` for a single pose per sample).

  Returns:
    Scalar.
  """
  scores, hyp_axis = _squeeze_scores(scores_fake, "lsgan_generator_loss",
                                     "scores_fake")
  err = jnp.square(scores - 1.0)
  if hyp_axis is not None:
    err = jnp.min(err, axis=hyp_axis)
  return jnp.mean(err)


def lsgan_discriminator_loss(scores_real: Array, scores_fake: Array) -> Array:
  """Discriminator loss 0.5 (D(real) - 1)^2 + 0.5 min_h D(fake_h)^2.

  Each term is averaged over its batch. The fakes must be detached by the
  caller (`jax.lax.stop_gradient` on the predicted poses, or scores computed
  from them) so that this loss trains only the discriminator.

  Args:
    scores_real: `[B, 1]` scores of real poses (`[B, Hyp, 1]`: min over Hyp).
    scores_fake: `[B, Hyp, 1]` scores of predicted poses (or `[B, 1]`).

  Returns:
    Scalar.
  """
  real, real_axis = _squeeze_scores(scores_real, "lsgan_discriminator_loss",
                                    "scores_real")
  fake, fake_axis = _squeeze_scores(scores_fake, "lsgan_discriminator_loss",
                                    "scores_fake")
  real_err = jnp.square(real - 1.0)
  fake_err = jnp.square(fake)
  if real_axis is not None:
    real_err = jnp.min(real_err, axis=real_axis)
  if fake_axis is not None:
    fake_err = jnp.min(fake_err, axis=fake_axis)
  return 0.5 * jnp.mean(real_err) + 0.5 * jnp.mean(fake_err)


# ---------------------------------------------------------------------------
# Discriminator inputs.


def random_vertical_rotation(key: Array, poses: Array,
                             max_angle_deg: float = 45.0,
                             up_axis: Union[str, Sequence[float]] = "y"
                             ) -> Array:
  """Rotates each pose about the vertical axis by a uniform random angle.

  Augmentation of the real poses fed to the discriminator. Rotation is
  about the origin, so pass root-relative poses (e.g. the output of
  `to_discriminator_space`, where y is vertical; use "z" for Z-up world
  poses).

  Args:
    key: PRNG key.
    poses: `[B, J, 3]`.
    max_angle_deg: angles are uniform in [-max, max] degrees.
    up_axis: "x", "y", "z" or a 3-vector.

  Returns:
    `[B, J, 3]` rotated poses.
  """
  if poses.ndim != 3 or poses.shape[-1] != 3:
    raise ValueError("xsup.py: random_vertical_rotation expects poses "
                     f"[B, J, 3], got shape {tuple(poses.shape)}.")
  rot = rotations.random_rotation_about_axis(
      key, (poses.shape[0],), axis=up_axis,
      max_angle=float(np.deg2rad(max_angle_deg)))
  return rotations.rotate(poses, rot.astype(poses.dtype))


def to_discriminator_space(joints: Array, units: str = "patch",
                           rect_3d_mm: float = 2000.0,
                           patch_width: int = 256,
                           root: int = 0) -> Array:
  """Joints -> the discriminator's space: root-relative, metres.

  Args:
    joints: `[..., J, 3]`; normalised patch coordinates (`units="patch"`) or
      metric coordinates in mm (`units="mm"`, e.g. world or camera frame).
    units: "patch" or "mm".
    rect_3d_mm: metric width of the patch (2000 mm published).
    patch_width: patch width in pixels.
    root: index of the root joint (pelvis = 0 in H36M-17/18).

  Returns:
    `[..., J, 3]` metres, root joint at the origin; axes those of the input.
  """
  if joints.shape[-1] != 3 or joints.ndim < 2:
    raise ValueError("xsup.py: to_discriminator_space expects [..., J, 3], "
                     f"got shape {tuple(joints.shape)}.")
  if units == "patch":
    scale = jnp.asarray(patch.patch_to_metric_scale(rect_3d_mm, patch_width),
                        joints.dtype)
    joints_mm = joints * scale
  elif units == "mm":
    joints_mm = joints
  else:
    raise ValueError(f"xsup.py: to_discriminator_space: units must be "
                     f"'patch' or 'mm', got {units!r}.")
  rel = joints_mm - joints_mm[..., root:root + 1, :]
  return rel * _MM_TO_M
