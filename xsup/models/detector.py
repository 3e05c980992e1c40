"""The X-as-Supervision keypoint detector: ResNet + deconv head + integral.

Image `[B, H, W, 3]` in [0, 1] -> ImageNet normalisation (mean
(0.485, 0.456, 0.406), std (0.229, 0.224, 0.225), what torchvision's
pretrained weights expect) -> ResNet features `[B, H/32, W/32, C]` ->
`head_layers` x [ConvTranspose 4x4 stride 2, `head_filters`, no bias,
BatchNorm, ReLU] -> 1x1 conv (with bias) to `num_joints * depth_dim`
channels at `[B, H/4, W/4]` (for 3 head layers) -> per-joint 3D heatmap logits
`[B, J, D, H/4, W/4]` (channel c = j * D + d) -> `integral.py` (soft-argmax x,
y and `num_hypo` depth hypotheses).

The transposed convolutions compute exactly torch's
`ConvTranspose2d(k=4, stride=2, padding=1)` (output = 2 x input); their flax
kernels `[4, 4, out, in]` are torch's `[in, out, 4, 4]` weights transposed by
(2, 3, 1, 0) (the layout of `flax.linen.ConvTranspose(transpose_kernel=True)`).
They are evaluated in sub-pixel form (`StridedDeconv`): four 2x2 convolutions,
one per output phase, interleaved; the same numbers as the dilated
convolution XLA emits for a transposed convolution, about 10x faster to
differentiate on CPU. Initialisation follows the published head: Kaiming normal
(fan-out) kernels, zero biases, BatchNorm scale 1 / bias 0.

Pretrained backbone weights: `xsup.models.pretrained.load_torchvision_resnet`
finds the backbone under params["backbone"] / batch_stats["backbone"].
"""

from __future__ import annotations

from typing import Any, Dict

import flax.linen as nn
import jax
import jax.numpy as jnp

from xsup.models import integral
from xsup.models import resnet

Dtype = Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def deconv4x4_stride2(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """torch `ConvTranspose2d(k=4, stride=2, padding=1, bias=False)`.

  Args:
    x: `[B, h, w, C_in]`.
    kernel: `[4, 4, C_out, C_in]` (flax transposed-kernel layout).

  Returns:
    `[B, 2h, 2w, C_out]`.
  """
  b, h, w, _ = x.shape
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  rows = []
  for a in (0, 1):
    cols = []
    for c in (0, 1):
      # For stride 2, padding 1, kernel 4: output row 2m takes input rows
      # m - 1 and m through kernel rows 3 and 1; row 2m + 1 takes rows m and
      # m + 1 through kernel rows 2 and 0, i.e. tap t of phase a uses kernel
      # row 3 - a - 2t. Static strided slices, not a gather (whose gradient
      # would be a scatter).
      taps = kernel[3 - a::-2, 3 - c::-2]  # [2, 2, out, in]
      cols.append(jax.lax.conv_general_dilated(
          padded[:, a:a + h + 1, c:c + w + 1],
          jnp.transpose(taps, (0, 1, 3, 2)), (1, 1), "VALID",
          dimension_numbers=("NHWC", "HWIO", "NHWC")))
    rows.append(jnp.stack(cols, axis=3))  # [B, h, w, 2 (column phase), out]
  out = jnp.stack(rows, axis=2)  # [B, h, 2 (row phase), w, 2, out]
  return out.reshape(b, 2 * h, 2 * w, out.shape[-1])


class StridedDeconv(nn.Module):
  """4x4 stride-2 transposed convolution without bias (x2 upsampling).

  Attributes:
    features: output channels.
    dtype: compute dtype (the kernel parameter is float32).
  """
  features: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """`[B, h, w, C_in]` -> `[B, 2h, 2w, features]`."""
    kernel = self.param("kernel", resnet.conv_init,
                        (4, 4, self.features, x.shape[-1]), jnp.float32)
    return deconv4x4_stride2(x.astype(self.dtype), kernel.astype(self.dtype))


class DeconvHead(nn.Module):
  """Upsampling head: deconv/BN/ReLU layers then a 1x1 conv.

  Attributes:
    out_channels: channels of the final 1x1 conv.
    num_filters: channels of each transposed conv.
    num_layers: number of x2 upsampling layers.
    dtype: compute dtype.
  """
  out_channels: int
  num_filters: int = 256
  num_layers: int = 3
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    """`[B, h, w, C]` -> `[B, h * 2**num_layers, w * 2**num_layers, out]`."""
    for i in range(self.num_layers):
      x = StridedDeconv(self.num_filters, dtype=self.dtype,
                        name=f"deconv{i}")(x)
      x = nn.BatchNorm(use_running_average=not train,
                       momentum=resnet.BN_MOMENTUM, epsilon=resnet.BN_EPSILON,
                       dtype=self.dtype, param_dtype=jnp.float32,
                       name=f"deconv{i}_bn")(x)
      x = nn.relu(x)
    return resnet.PointwiseConv(self.out_channels, use_bias=True,
                                dtype=self.dtype, name="final")(x)


class IntegralDetector(nn.Module):
  """Multi-hypothesis integral 3D keypoint detector.

  Attributes:
    resnet_depth: 18, 34, 50, 101 or 152.
    resnet_width: backbone stem width (64: the published ResNet).
    num_joints: J (18 for the H36M-18 layout).
    depth_dim: D, depth bins of the heatmap volume.
    num_hypo: K depth hypotheses (1 = plain integral regression).
    neighbor_size: odd window (depth bins) of each hypothesis' expectation.
    head_filters: channels of the deconv layers.
    head_layers: number of x2 deconv layers (3 -> heatmaps at input / 4).
    dtype: compute dtype of backbone and head (e.g. `jnp.bfloat16`);
      parameters and the integral step stay float32.
  """
  resnet_depth: int = 50
  resnet_width: int = 64
  num_joints: int = 18
  depth_dim: int = 64
  num_hypo: int = 3
  neighbor_size: int = 15
  head_filters: int = 256
  head_layers: int = 3
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, train: bool) -> Dict[str, jax.Array]:
    """Predicts joints from person-centred patches.

    Args:
      images: `[B, H, W, 3]` RGB in [0, 1]; H and W multiples of 32.
      train: BatchNorm mode (True: batch statistics, apply with
        `mutable=['batch_stats']`).

    Returns:
      A dict with
        "joints": `[B, K, J, 3]` float32 normalised patch coordinates
          (x, y, z) in [-1, 1]; x = column / W_h * 2 - 1 on the heatmap grid
          (W_h = heatmap width), z = bin / D * 2 - 1; hypothesis 0 is the
          most probable depth.
        "depth_marginals": `[B, J, D]` float32 p(z).
        "heatmaps": `[B, J, D, H_h, W_h]` float32 logits, H_h = H / 4 for
          3 head layers.
    """
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"detector.py: expected images [B, H, W, 3], got "
                       f"shape {images.shape}.")
    _, height, width, _ = images.shape
    if height % 32 or width % 32:
      raise ValueError(f"detector.py: image height and width must be "
                       f"multiples of 32, got {height}x{width}.")
    mean = jnp.asarray(IMAGENET_MEAN, jnp.float32)
    std = jnp.asarray(IMAGENET_STD, jnp.float32)
    x = (images.astype(jnp.float32) - mean) / std
    x = resnet.ResNet(self.resnet_depth, width=self.resnet_width,
                      dtype=self.dtype, name="backbone")(x, train)
    x = DeconvHead(self.num_joints * self.depth_dim, self.head_filters,
                   self.head_layers, dtype=self.dtype, name="head")(x, train)
    b, h, w, _ = x.shape
    volume = x.astype(jnp.float32).reshape(b, h, w, self.num_joints,
                                           self.depth_dim)
    # The integral reads the channels-last volume in place; the transposed
    # copy is only computed when a caller uses "heatmaps".
    out = integral.integral_from_marginals(
        *integral.channels_last_marginals(volume), num_hypo=self.num_hypo,
        neighbor_size=self.neighbor_size)
    heatmaps = jnp.transpose(volume, (0, 3, 4, 1, 2))  # [B, J, D, h, w]
    return {"joints": out.joints, "depth_marginals": out.depth_marginals,
            "heatmaps": heatmaps}
