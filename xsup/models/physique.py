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


def upsample_bilinear_2x(x: Array) -> Array:
  """`[B, H, W, C]` -> `[B, 2H, 2W, C]` bilinear, half-pixel centres."""
  b, h, w, c = x.shape
  return jax.image.resize(x, (b, 2 * h, 2 * w, c), method="bilinear",
                          antialias=False)


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
