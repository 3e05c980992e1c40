"""Invariant teacher: a pose-dictionary lifter with a rotation head.

Input: normalised 2D keypoints `[B, J, 2]` (root-centred, focal-normalised,
mean pelvis-head distance 1/5; see `xsup.geometry.camera.normalize_2d_lifting`).
A dense trunk (1024 wide, 6 bottleneck residual layers) predicts dictionary
coefficients alpha `[B, K]` (K = 12), the canonical shape
`S = reshape(alpha @ D)` `[B, J, 3]` (D is the learned dictionary, the shape
layer) and a rotation `R = exp(omega)` from an axis-angle head. The camera
frame shape is `S R` (row vectors), projected by `x / clamp(5 + z, 1)`.
"""

from typing import Any, Dict

import flax.linen as nn
import jax
import jax.numpy as jnp

from xsup.geometry import rotations

Array = jax.Array


def _uniform_scale_init(key, shape, dtype=jnp.float32):
  """BatchNorm scales drawn from U(0, 1)."""
  return jax.random.uniform(key, shape, dtype)


def _head_init(std: float):
  return nn.initializers.normal(stddev=std)


class _DenseBN(nn.Module):
  """Dense (a 1x1 conv on one position) + BatchNorm + optional ReLU."""
  features: int
  relu: bool = True
  std: float = 0.01

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    x = nn.Dense(self.features, kernel_init=_head_init(self.std))(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                     epsilon=1e-5, scale_init=_uniform_scale_init)(x)
    return nn.relu(x) if self.relu else x


class _Bottleneck(nn.Module):
  """1024 -> 256 -> 256 -> 1024 residual layer with BatchNorm."""
  features: int
  bottleneck: int
  std: float = 0.01

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    y = _DenseBN(self.bottleneck, std=self.std)(x, train)
    y = _DenseBN(self.bottleneck, std=self.std)(y, train)
    y = _DenseBN(self.features, relu=False, std=self.std)(y, train)
    if x.shape[-1] == self.features:
      y = y + x
    return nn.relu(y)


class TeacherTrunk(nn.Module):
  """Shared trunk + dictionary heads: 2D `[B, J, 2]` -> coefficients, shape."""
  num_joints: int = 17
  width: int = 1024
  num_layers: int = 6
  dict_size: int = 12
  init_std: float = 0.01

  @nn.compact
  def __call__(self, keypoints_2d: Array, train: bool) -> Dict[str, Array]:
    batch = keypoints_2d.shape[0]
    x = keypoints_2d.reshape(batch, -1)
    x = _DenseBN(self.width, std=self.init_std)(x, train)
    for _ in range(self.num_layers):
      x = _Bottleneck(self.width, self.width // 4, std=self.init_std)(x, train)
    alpha = nn.Dense(self.dict_size, kernel_init=_head_init(self.init_std),
                     name="alpha")(x)
    shape = nn.Dense(3 * self.num_joints, kernel_init=_head_init(
        self.init_std), name="dictionary")(alpha)
    return {"features": x, "coefficients": alpha,
            "canonical": shape.reshape(batch, self.num_joints, 3)}


class Teacher(nn.Module):
  """Pose-dictionary teacher (rotation-invariant canonical shape).

  `__call__(keypoints_2d [B, J, 2], train)` returns a dict:
    `canonical` `[B, J, 3]` the view-invariant shape S,
    `rotation` `[B, 3, 3]` R, `camera` `[B, J, 3]` = S R (lifting units),
    `coefficients` `[B, K]`.
  `canonical_only(keypoints_2d, train)` runs the trunk and shape heads only
  (the re-lifting pass of the invariance cycle).
  """
  num_joints: int = 17
  width: int = 1024
  num_layers: int = 6
  dict_size: int = 12
  init_std: float = 0.01

  def setup(self):
    self.trunk = TeacherTrunk(self.num_joints, self.width, self.num_layers,
                              self.dict_size, self.init_std)
    self.rotation_head = nn.Dense(3, kernel_init=_head_init(self.init_std))

  def __call__(self, keypoints_2d: Array, train: bool = False
               ) -> Dict[str, Array]:
    if keypoints_2d.shape[-2:] != (self.num_joints, 2):
      raise ValueError(f"Teacher expects [B, {self.num_joints}, 2] keypoints, "
                       f"got {keypoints_2d.shape}")
    keypoints_2d = keypoints_2d - keypoints_2d[:, :1]
    out = self.trunk(keypoints_2d, train)
    rot = rotations.axis_angle_to_matrix(self.rotation_head(out["features"]))
    camera = jnp.einsum("bjk,bkl->bjl", out["canonical"], rot)
    return {"canonical": out["canonical"], "rotation": rot, "camera": camera,
            "coefficients": out["coefficients"]}

  def canonical_only(self, keypoints_2d: Array, train: bool = False
                     ) -> Dict[str, Any]:
    return self.trunk(keypoints_2d, train)
