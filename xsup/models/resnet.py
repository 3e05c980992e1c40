"""ResNet backbones (18/34/50/101/152) laid out like torchvision's.

The networks follow torchvision's ResNet "v1.5": a 7x7 stride-2 stem conv,
BatchNorm, ReLU and a 3x3 stride-2 max pool, then four stages of basic
(depth 18/34) or bottleneck (depth 50/101/152) blocks; stages 2-4 halve the
resolution, bottleneck blocks stride on their 3x3 conv. The classifier is
omitted: the module returns the last feature map.

Names mirror torchvision's state dict so that ImageNet weights map one to one
(see `xsup/models/pretrained.py`):

  torchvision                      flax (params / batch_stats)
  conv1.weight                     conv1/kernel
  bn1.{weight,bias}                bn1/{scale,bias}
  bn1.{running_mean,running_var}   bn1/{mean,var}            (batch_stats)
  layer{s}.{b}.conv{k}.weight      layer{s}_{b}/conv{k}/kernel
  layer{s}.{b}.bn{k}.*             layer{s}_{b}/bn{k}/*
  layer{s}.{b}.downsample.0.*      layer{s}_{b}/downsample_conv/*
  layer{s}.{b}.downsample.1.*      layer{s}_{b}/downsample_bn/*

Padding is explicit and symmetric (as in torch), so a strided 3x3 conv sees
the same pixels as torchvision's and loaded weights give the same features.
BatchNorm uses torch's defaults (epsilon 1e-5, running-average momentum 0.1,
i.e. flax momentum 0.9). Convolutions are initialised like torchvision
(Kaiming normal, fan-out).
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from xsup.models import pooling

Dtype = Any

# depth -> (block kind, blocks per stage).
RESNET_SPECS: Dict[int, Tuple[str, Tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}

_STAGE_WIDTHS = (64, 128, 256, 512)
_EXPANSION = {"basic": 1, "bottleneck": 4}

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # flax convention: new = m * old + (1 - m) * batch.

conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def stage_widths(width: int = 64) -> Tuple[int, int, int, int]:
  """Inner widths of the four stages for a stem of `width` channels."""
  if width <= 0 or width % 8:
    raise ValueError(f"resnet.py: width must be a positive multiple of 8, "
                     f"got {width!r}.")
  return tuple(w * width // 64 for w in _STAGE_WIDTHS)


def resnet_output_channels(depth: int, width: int = 64) -> int:
  """Channels of the last feature map of ResNet-`depth` (512 or 2048 at the
  standard `width` 64)."""
  kind, _ = _spec(depth)
  return stage_widths(width)[-1] * _EXPANSION[kind]


def _spec(depth: int) -> Tuple[str, Tuple[int, int, int, int]]:
  if depth not in RESNET_SPECS:
    raise ValueError(f"resnet.py: unsupported ResNet depth {depth!r}; "
                     f"expected one of {sorted(RESNET_SPECS)}.")
  return RESNET_SPECS[depth]


def _pad(k: int) -> Tuple[Tuple[int, int], Tuple[int, int]]:
  return ((k // 2, k // 2), (k // 2, k // 2))


class BasicBlock(nn.Module):
  """Two 3x3 convs with a residual connection (ResNet-18/34).

  Attributes:
    planes: output channels.
    strides: stride of the first conv (and of the projection shortcut).
    dtype: compute dtype; parameters stay float32.
  """
  planes: int
  strides: int = 1
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv = _conv_factory(self.dtype)
    bn = _bn_factory(self.dtype, train)
    residual = x
    y = conv(self.planes, 3, self.strides, name="conv1")(x)
    y = nn.relu(bn(name="bn1")(y))
    y = conv(self.planes, 3, 1, name="conv2")(y)
    y = bn(name="bn2")(y)
    if self.strides != 1 or x.shape[-1] != self.planes:
      residual = conv(self.planes, 1, self.strides,
                      name="downsample_conv")(residual)
      residual = bn(name="downsample_bn")(residual)
    return nn.relu(y + residual)


class Bottleneck(nn.Module):
  """1x1 -> 3x3 (strided) -> 1x1 (x4 channels) with a residual connection.

  Attributes:
    planes: width of the inner convs; the block outputs 4 * planes channels.
    strides: stride of the 3x3 conv (and of the projection shortcut).
    dtype: compute dtype; parameters stay float32.
  """
  planes: int
  strides: int = 1
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv = _conv_factory(self.dtype)
    bn = _bn_factory(self.dtype, train)
    out_channels = self.planes * _EXPANSION["bottleneck"]
    residual = x
    y = conv(self.planes, 1, 1, name="conv1")(x)
    y = nn.relu(bn(name="bn1")(y))
    y = conv(self.planes, 3, self.strides, name="conv2")(y)
    y = nn.relu(bn(name="bn2")(y))
    y = conv(out_channels, 1, 1, name="conv3")(y)
    y = bn(name="bn3")(y)
    if self.strides != 1 or x.shape[-1] != out_channels:
      residual = conv(out_channels, 1, self.strides,
                      name="downsample_conv")(residual)
      residual = bn(name="downsample_bn")(residual)
    return nn.relu(y + residual)


class PointwiseConv(nn.Module):
  """1x1 convolution `[B, H, W, C] -> [B, ceil(H/s), ceil(W/s), features]`
  computed as a matrix product over the channels.

  The same parameters as `nn.Conv(features, (1, 1), strides=s)` (`kernel`
  `[1, 1, C, features]`, optional `bias`) and the same numbers; its
  gradient with respect to the kernel is one matrix product, where XLA
  differentiates a convolution into a convolution with an H x W window,
  several times slower on CPU.

  Attributes:
    features: output channels.
    strides: spatial stride s (the input is subsampled, as a 1x1 kernel
      without padding does).
    use_bias: add a bias (init 0).
    dtype: compute dtype; parameters stay float32.
  """
  features: int
  strides: int = 1
  use_bias: bool = False
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", conv_init,
                        (1, 1, x.shape[-1], self.features), jnp.float32)
    if self.strides != 1:
      x = x[:, ::self.strides, ::self.strides]
    y = jnp.einsum("...c,cf->...f", x.astype(self.dtype),
                   kernel[0, 0].astype(self.dtype))
    if self.use_bias:
      bias = self.param("bias", nn.initializers.zeros, (self.features,),
                        jnp.float32)
      y = y + bias.astype(self.dtype)
    return y


def _conv_factory(dtype: Dtype):
  def make(features: int, kernel: int, strides: int, name: str) -> nn.Module:
    if kernel == 1:
      return PointwiseConv(features, strides, dtype=dtype, name=name)
    return nn.Conv(features, (kernel, kernel), strides=(strides, strides),
                   padding=_pad(kernel), use_bias=False, dtype=dtype,
                   param_dtype=jnp.float32, kernel_init=conv_init, name=name)
  return make


def _bn_factory(dtype: Dtype, train: bool):
  def make(name: str) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                        epsilon=BN_EPSILON, dtype=dtype,
                        param_dtype=jnp.float32, name=name)
  return make


class ResNet(nn.Module):
  """ResNet feature extractor (no pooling head, no classifier).

  Attributes:
    depth: 18, 34, 50, 101 or 152.
    width: stem channels; the stages have (1, 2, 4, 8) x width/64 times the
      standard (64, 128, 256, 512). 64 is the published network (and the
      only width with pretrained weights); smaller widths make fast CPU
      models.
    dtype: compute dtype (e.g. `jnp.bfloat16`); parameters and BatchNorm
      statistics stay float32.
  """
  depth: int = 50
  width: int = 64
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    """Runs the backbone.

    Args:
      x: `[B, H, W, C]` images (already normalised), NHWC.
      train: True uses batch statistics and updates `batch_stats` (apply with
        `mutable=['batch_stats']`); False uses the running averages.

    Returns:
      `[B, ceil(H/32), ceil(W/32), resnet_output_channels(depth, width)]`
      features in `dtype`.
    """
    kind, layers = _spec(self.depth)
    if x.ndim != 4:
      raise ValueError(f"resnet.py: expected images [B, H, W, C], got shape "
                       f"{x.shape}.")
    block_cls = BasicBlock if kind == "basic" else Bottleneck
    x = x.astype(self.dtype)
    widths = stage_widths(self.width)
    x = nn.Conv(self.width, (7, 7), strides=(2, 2), padding=_pad(7),
                use_bias=False, dtype=self.dtype, param_dtype=jnp.float32,
                kernel_init=conv_init, name="conv1")(x)
    x = _bn_factory(self.dtype, train)(name="bn1")(x)
    x = nn.relu(x)
    x = pooling.max_pool_3x3_stride2(x)
    for stage, (width, blocks) in enumerate(zip(widths, layers)):
      for b in range(blocks):
        strides = 2 if (stage > 0 and b == 0) else 1
        x = block_cls(width, strides, dtype=self.dtype,
                      name=f"layer{stage + 1}_{b}")(x, train)
    return x
