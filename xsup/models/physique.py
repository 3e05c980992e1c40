"""Physique network: rendered skeleton line mask -> body (silhouette) mask.

A small convolutional encoder/decoder. With `features = (f0, f1, ..., fn)`
(default (32, 64, 128)):

  encoder: conv(f0); for each next level k: conv(f_{k-1}), down(f_k)
  decoder: for each level k from n down to 1: conv(f_k), up(f_{k-1})
  head:    3x3 conv to one channel with bias, sigmoid

where conv = 3x3 stride-1 conv + BatchNorm + LeakyReLU(0.01), down = the same
with stride 2 (padding 1, i.e. output ceil(S / 2)), up = bilinear 2x
upsampling (half-pixel centres, as `align_corners=False`) followed by conv.
The convolutions before a BatchNorm carry no bias (the BatchNorm shift makes
it redundant). The spatial size must be divisible by 2^n so that the output
matches the input.

BatchNorm: pass `train=True` and `mutable=["batch_stats"]` to update the
running statistics; under `jit` with a batch sharded over devices the
statistics are those of the whole global batch (like synchronised
BatchNorm). Momentum 0.9 (= PyTorch momentum 0.1), epsilon 1e-5.

Inputs and outputs are NHWC `[B, S, S, C]`; the default input is the
one-channel line mask of `xsup.models.render.render_skeleton`.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


class ConvBlock(nn.Module):
  """3x3 conv (no bias) + BatchNorm + LeakyReLU(0.01)."""
  features: int
  strides: int = 1

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    x = nn.Conv(self.features, (3, 3), strides=(self.strides, self.strides),
                padding=((1, 1), (1, 1)), use_bias=False)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                     epsilon=1e-5)(x)
    return nn.leaky_relu(x, negative_slope=0.01)


def _upsample_axis_2x(x: Array, axis: int) -> Array:
  """Doubles `axis` by bilinear interpolation with half-pixel centres.

  Output 2i sits at input coordinate i - 1/4 and 2i + 1 at i + 1/4, so they
  are 3/4 x[i] + 1/4 x[i - 1] and 3/4 x[i] + 1/4 x[i + 1], the outer
  neighbour clamped at the borders (torch `align_corners=False`,
  `jax.image.resize(..., "bilinear")`). Two taps per output instead of a
  dense interpolation matrix.
  """
  n = x.shape[axis]
  first = jax.lax.slice_in_dim(x, 0, 1, axis=axis)
  last = jax.lax.slice_in_dim(x, n - 1, n, axis=axis)
  previous = jnp.concatenate(
      [first, jax.lax.slice_in_dim(x, 0, n - 1, axis=axis)], axis=axis)
  following = jnp.concatenate(
      [jax.lax.slice_in_dim(x, 1, n, axis=axis), last], axis=axis)
  even = 0.75 * x + 0.25 * previous
  odd = 0.75 * x + 0.25 * following
  shape = list(x.shape)
  shape[axis] = 2 * n
  return jnp.stack([even, odd], axis=axis + 1).reshape(shape)


def upsample_bilinear_2x(x: Array) -> Array:
  """`[B, H, W, C]` -> `[B, 2H, 2W, C]` bilinear, half-pixel centres."""
  return _upsample_axis_2x(_upsample_axis_2x(x, 1), 2)


class PhysiqueNet(nn.Module):
  """Line mask `[B, S, S, C_in]` -> body mask `[B, S, S, 1]` in (0, 1).

  Attributes:
    features: channels per level, e.g. (32, 64, 128); one stride-2 step
      between consecutive levels.
  """
  features: Sequence[int] = (32, 64, 128)

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    """Args: x `[B, S, S, C]` (S divisible by 2^(len(features)-1)).

    Returns: `[B, S, S, 1]` sigmoid probabilities.
    """
    feats = tuple(int(f) for f in self.features)
    if not feats:
      raise ValueError("physique.py: features must not be empty.")
    if x.ndim != 4:
      raise ValueError("physique.py: expected NHWC input [B, S, S, C], got "
                       f"shape {tuple(x.shape)}.")
    factor = 2 ** (len(feats) - 1)
    if x.shape[1] % factor or x.shape[2] % factor:
      raise ValueError(f"physique.py: spatial size {x.shape[1:3]} must be "
                       f"divisible by {factor} for features {feats}.")
    x = ConvBlock(feats[0])(x, train)
    for k in range(1, len(feats)):
      x = ConvBlock(feats[k - 1])(x, train)
      x = ConvBlock(feats[k], strides=2)(x, train)
    for k in range(len(feats) - 1, 0, -1):
      x = ConvBlock(feats[k])(x, train)
      x = upsample_bilinear_2x(x)
      x = ConvBlock(feats[k - 1])(x, train)
    x = nn.Conv(1, (3, 3), padding=((1, 1), (1, 1)), use_bias=True)(x)
    return nn.sigmoid(x)
