"""Tests for xsup/models/detector.py."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import model_fixtures
from xsup.models import detector
from xsup.models import resnet


def _small_detector(**kwargs):
  args = dict(resnet_depth=18, num_joints=5, depth_dim=8, num_hypo=3,
              neighbor_size=3, head_filters=16)
  args.update(kwargs)
  return detector.IntegralDetector(**args)


def _abstract(model, shape):
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape),
                                           train=False))


def test_default_detector_shapes_at_256():
  model = detector.IntegralDetector(resnet_depth=50)
  variables = _abstract(model, (1, 256, 256, 3))
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables,
                       jax.ShapeDtypeStruct((2, 256, 256, 3), jnp.float32))
  assert out["joints"].shape == (2, 3, 18, 3)
  assert out["depth_marginals"].shape == (2, 18, 64)
  assert out["heatmaps"].shape == (2, 18, 64, 64, 64)
  head = variables["params"]["head"]
  assert head["deconv0"]["kernel"].shape == (4, 4, 256, 2048)
  assert "bias" not in head["deconv0"]
  assert head["final"]["kernel"].shape == (1, 1, 256, 18 * 64)
  assert head["final"]["bias"].shape == (18 * 64,)


def test_small_detector_forward_backward():
  model = _small_detector()
  images = jnp.asarray(np.random.default_rng(0).uniform(size=(2, 64, 64, 3)),
                       jnp.float32)
  variables = model_fixtures.numpy_variables(_abstract(model, images.shape))

  @jax.jit
  def step(params, batch_stats, images):
    def loss_fn(params):
      out, updates = model.apply(
          {"params": params, "batch_stats": batch_stats}, images, train=True,
          mutable=["batch_stats"])
      return jnp.mean(out["joints"]**2), (out, updates)
    return jax.grad(loss_fn, has_aux=True)(params)

  grads, (out, updates) = step(variables["params"], variables["batch_stats"],
                               images)
  assert out["joints"].shape == (2, 3, 5, 3)
  assert out["depth_marginals"].shape == (2, 5, 8)
  assert out["heatmaps"].shape == (2, 5, 8, 16, 16)
  assert np.all(np.abs(np.asarray(out["joints"])) <= 1.0)
  np.testing.assert_allclose(out["depth_marginals"].sum(-1), 1.0, atol=1e-5)
  leaves = jax.tree.leaves(grads)
  assert all(np.all(np.isfinite(g)) for g in leaves)
  assert float(jnp.abs(grads["backbone"]["conv1"]["kernel"]).sum()) > 0
  assert float(jnp.abs(grads["head"]["final"]["bias"]).sum()) > 0
  old = variables["batch_stats"]["head"]["deconv0_bn"]["mean"]
  new = updates["batch_stats"]["head"]["deconv0_bn"]["mean"]
  assert float(jnp.abs(new - old).max()) > 0


def test_deconv_matches_torch_conv_transpose():
  # torch ConvTranspose2d(k=4, stride=2, padding=1):
  #   out[2i - 1 + k] += x[i] * w[k].
  rng = np.random.default_rng(3)
  x = rng.normal(size=(1, 3, 5, 2)).astype(np.float32)
  w = rng.normal(size=(2, 4, 4, 4)).astype(np.float32)  # [in, out, kh, kw]
  layer = nn.ConvTranspose(4, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                           transpose_kernel=True, use_bias=False)
  # Same construction as DeconvHead's layers (checked below by shape).
  y = layer.apply({"params": {"kernel": w.transpose(2, 3, 1, 0)}}, x)
  ref = np.zeros((1, 6, 10, 4))
  for iy in range(3):
    for ix in range(5):
      for ky in range(4):
        for kx in range(4):
          oy, ox = 2 * iy - 1 + ky, 2 * ix - 1 + kx
          if 0 <= oy < 6 and 0 <= ox < 10:
            ref[0, oy, ox] += x[0, iy, ix] @ w[:, :, ky, kx]
  np.testing.assert_allclose(y, ref, atol=1e-5)
  head = detector.DeconvHead(out_channels=3, num_filters=4, num_layers=1)
  abstract = jax.eval_shape(lambda: head.init(jax.random.key(0), x,
                                              train=False))
  assert abstract["params"]["deconv0"]["kernel"].shape == (4, 4, 4, 2)
  hv = model_fixtures.numpy_variables(abstract)
  hv["params"]["deconv0"]["kernel"] = jnp.asarray(w.transpose(2, 3, 1, 0))
  _, inter = head.apply(hv, x, train=False, capture_intermediates=True,
                        mutable=["intermediates"])
  np.testing.assert_allclose(inter["intermediates"]["deconv0"]["__call__"][0],
                             ref, atol=1e-5)


def test_normalisation_and_heatmap_channel_layout():
  # With a zero final kernel the logits are the final bias: channel j*D + d.
  model = _small_detector(num_joints=2, depth_dim=8, num_hypo=1)
  variables = model_fixtures.numpy_variables(
      _abstract(model, (1, 32, 32, 3)))
  bias = np.zeros((2, 8), np.float32)
  bias[0, 2] = 30.0
  bias[1, 6] = 30.0
  final = variables["params"]["head"]["final"]
  final["kernel"] = jnp.zeros_like(final["kernel"])
  final["bias"] = jnp.asarray(bias.reshape(-1))
  out, inter = jax.jit(lambda v, x: model.apply(
      v, x, train=False, mutable=["intermediates"],
      capture_intermediates=lambda m, _: m.name == "conv1"))(
          variables, jnp.zeros((1, 32, 32, 3)))
  # A black image is (0 - mean) / std after normalisation: at an interior
  # pixel the stem conv sees that constant in its whole 7x7 window.
  stem = inter["intermediates"]["backbone"]["conv1"]["__call__"][0]
  kernel = variables["params"]["backbone"]["conv1"]["kernel"]  # [7,7,3,64]
  pixel = -np.asarray(detector.IMAGENET_MEAN) / np.asarray(
      detector.IMAGENET_STD)
  np.testing.assert_allclose(stem[0, 8, 8],
                             np.einsum("hwio,i->o", kernel, pixel),
                             rtol=1e-4, atol=1e-4)
  assert out["heatmaps"].shape == (1, 2, 8, 8, 8)
  np.testing.assert_allclose(out["heatmaps"][0, :, :, 3, 5], bias)
  centre = (8 - 1) / 2 / 8 * 2 - 1  # uniform over 8 columns / rows.
  np.testing.assert_allclose(
      out["joints"][0, 0],
      [[centre, centre, 2 / 8 * 2 - 1], [centre, centre, 6 / 8 * 2 - 1]],
      atol=1e-5)


def test_bfloat16_detector_outputs_float32():
  model = _small_detector(dtype=jnp.bfloat16)
  variables = _abstract(model, (1, 64, 64, 3))
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables,
                       jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
  assert out["joints"].dtype == jnp.float32
  assert out["heatmaps"].dtype == jnp.float32


def test_bad_images_raise():
  model = _small_detector()
  with pytest.raises(ValueError, match="multiples of 32"):
    _abstract(model, (1, 60, 64, 3))
  with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
    _abstract(model, (1, 64, 64, 1))


def test_subpixel_deconv_equals_transposed_convolution_with_gradients():
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.normal(size=(2, 3, 4, 5)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(4, 4, 6, 5)), jnp.float32)

  def dilated(x, k):  # What nn.ConvTranspose(transpose_kernel=True) runs.
    return jax.lax.conv_transpose(x, k, (2, 2), ((2, 2), (2, 2)),
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  transpose_kernel=True)

  np.testing.assert_allclose(detector.deconv4x4_stride2(x, kernel),
                             dilated(x, kernel), atol=1e-5)
  cotangent = jnp.asarray(rng.normal(size=(2, 6, 8, 6)), jnp.float32)
  grads = [jax.grad(lambda x, k: jnp.sum(f(x, k) * cotangent),
                    argnums=(0, 1))(x, kernel)
           for f in (detector.deconv4x4_stride2, dilated)]
  for ours, ref in zip(*grads):
    np.testing.assert_allclose(ours, ref, atol=1e-4)
