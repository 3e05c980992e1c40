"""A learned plausibility score of 3D H36M-17 poses (lifting hypotheses).

`PosePrior` puts a pose in its own body frame at unit size
(`canonical_pose`) and scores it with one of the image method's graph
discriminators (`xsup.models.discriminator`, by name) on the H36M-17 tree.
The score is invariant to rotation, translation and scale of the input, so
poses from any camera or world frame, in any unit, compare directly.

What it learns depends on its training (`xsup.train.lifting`): real poses
(procedural poses or the teacher's anatomically oriented outputs) against
their mirror images. A mirror image of a pose is a rotation of its depth
mirror, which projects onto the same 2D keypoints, so such a prior ranks
the depth-mirror pair of a lifting network the way a real body would.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from xsup import skeleton as skeleton_lib
from xsup.models import discriminator as discriminator_lib

Array = jax.Array

_H17 = skeleton_lib.H36M17


def unit_radius(poses: Array, eps: float = 1e-12) -> Array:
  """Root-relative `[..., J, 3]` poses scaled to unit RMS joint radius."""
  rel = poses - poses[..., :1, :]
  radius = jnp.sqrt(jnp.mean(jnp.sum(rel * rel, axis=-1), axis=-1) + eps)
  return rel / radius[..., None, None]


def canonical_pose(pose_3d: Array, eps: float = 1e-8) -> Array:
  """Root-relative pose in its body frame, scaled to unit RMS radius.

  The body frame: x along the hips (left hip - right hip), y along the
  torso (thorax - pelvis, made orthogonal to x), z = x cross y (forward).
  It is a proper rotation, so a rotated, shifted or rescaled pose gives the
  same result, and a mirror image gives the same pose with z negated.

  Args:
    pose_3d: `[..., 17, 3]` H36M-17 joints, any unit and rigid frame.
    eps: guards the normalisations of degenerate poses.
  Returns:
    `[..., 17, 3]` unit-free canonical pose.
  """
  if pose_3d.shape[-2:] != (_H17.num_joints, 3):
    raise ValueError(f"canonical_pose: expected H36M-17 joints [..., 17, 3], "
                     f"got shape {tuple(pose_3d.shape)}")
  rel = pose_3d - pose_3d[..., :1, :]

  def unit(v):
    return v / jnp.sqrt(jnp.sum(v * v, axis=-1, keepdims=True) + eps)

  across = unit(rel[..., _H17.index("left_hip"), :] -
                rel[..., _H17.index("right_hip"), :])
  up = rel[..., _H17.index("thorax"), :]
  up = unit(up - jnp.sum(up * across, axis=-1, keepdims=True) * across)
  forward = jnp.cross(across, up)
  frame = jnp.stack([across, up, forward], axis=-2)  # rows = body axes
  return unit_radius(jnp.einsum("...jc,...dc->...jd", rel, frame), eps)


class PosePrior(nn.Module):
  """`[B, 17, 3]` poses -> `[B]` plausibility scores.

  Attributes:
    discriminator: a name of `discriminator.DISCRIMINATORS`.
    features: input, hidden and output widths of its graph layers.
    num_layers: its residual blocks (ignored by `simple_gcn`).
    use_pe: joint positional code (SAGE discriminators only).
    head_dim: MLP width of `res_sage_gcn_decouple`.
    dropout: dropout of `res_sage_gcn_decouple`'s head / `res_gcn`'s
      blocks; training then needs a "dropout" RNG.
  """
  discriminator: str = "res_sage_gcn_decouple"
  features: int = 32
  num_layers: int = 1
  use_pe: bool = True
  head_dim: int = 64
  dropout: float = 0.0

  @nn.compact
  def __call__(self, pose_3d: Array, train: bool = False) -> Array:
    kwargs = dict(skeleton=_H17, input_dim=self.features,
                  hidden_dim=self.features, output_dim=self.features)
    if self.discriminator != "simple_gcn":
      kwargs["num_layers"] = self.num_layers
    if self.discriminator in ("res_sage_gcn", "res_sage_gcn_decouple"):
      kwargs["use_pe"] = self.use_pe
    if self.discriminator == "res_sage_gcn_decouple":
      kwargs.update(head_dim=self.head_dim, dropout=self.dropout)
    if self.discriminator == "res_gcn":
      kwargs["dropout"] = self.dropout
    cls = discriminator_lib.DISCRIMINATORS.get(self.discriminator)
    if cls is None:
      raise ValueError(f"PosePrior: unknown discriminator "
                       f"{self.discriminator!r}; known: "
                       f"{sorted(discriminator_lib.DISCRIMINATORS)}")
    net = cls(name="net", **kwargs)
    return net(canonical_pose(pose_3d), train)[:, 0]
