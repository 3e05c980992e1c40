"""Tests for xsup/models/resnet.py."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xsup.models import resnet


def numpy_variables(abstract, seed=0):
  """Concrete variables for an abstract tree, drawn with numpy (fast on CPU).

  Kernels ~ N(0, 2 / fan_in), BatchNorm scale 1 / bias 0, running mean 0 /
  var 1, other biases 0.
  """
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if "kernel" in name:
      std = np.sqrt(2.0 / np.prod(leaf.shape[:-1]))
      value = rng.normal(size=leaf.shape) * std
    elif "scale" in name or "var" in name:
      value = np.ones(leaf.shape)
    else:
      value = np.zeros(leaf.shape)
    return jnp.asarray(value, leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, abstract)


def _abstract_variables(depth, shape=(2, 64, 64, 3), dtype=jnp.float32):
  model = resnet.ResNet(depth, dtype=dtype)
  return model, jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros(shape), train=False))


# Parameter counts of torchvision's resnetN without its fc layer.
@pytest.mark.parametrize("depth,count", [(18, 11_176_512), (34, 21_284_672),
                                         (50, 23_508_032), (101, 42_500_160),
                                         (152, 58_143_808)])
def test_parameter_count_matches_torchvision(depth, count):
  _, variables = _abstract_variables(depth)
  assert sum(x.size for x in jax.tree.leaves(variables["params"])) == count
  # Every BatchNorm has running mean and variance.
  stats = jax.tree.leaves(variables["batch_stats"])
  scales = [x for p, x in jax.tree_util.tree_leaves_with_path(
      variables["params"]) if "scale" in jax.tree_util.keystr(p)]
  assert len(stats) == 2 * len(scales)


@pytest.mark.parametrize("depth,channels", [(18, 512), (50, 2048)])
def test_output_shapes(depth, channels):
  model, variables = _abstract_variables(depth)
  for shape, out_hw in [((2, 64, 64, 3), (2, 2)), ((1, 96, 64, 3), (3, 2))]:
    out = jax.eval_shape(
        lambda v, x: model.apply(v, x, train=False), variables,
        jax.ShapeDtypeStruct(shape, jnp.float32))
    assert out.shape == (shape[0],) + out_hw + (channels,)
  assert resnet.resnet_output_channels(depth) == channels


@pytest.mark.parametrize("depth,channels", [(18, 128), (50, 512)])
def test_narrow_width_scales_every_stage(depth, channels):
  model = resnet.ResNet(depth, width=16)
  variables = jax.eval_shape(
      lambda k: model.init(k, jnp.zeros((1, 64, 64, 3)), train=False),
      jax.random.PRNGKey(0))
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False),
                       variables, jax.ShapeDtypeStruct((2, 64, 64, 3),
                                                       jnp.float32))
  assert out.shape == (2, 2, 2, channels)
  assert resnet.resnet_output_channels(depth, width=16) == channels
  assert variables["params"]["conv1"]["kernel"].shape == (7, 7, 3, 16)
  with pytest.raises(ValueError, match="multiple of 8"):
    resnet.stage_widths(12)


def test_bottleneck_strides_on_3x3_conv():
  model, variables = _abstract_variables(50)
  _, inter = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=False, capture_intermediates=True,
                               mutable=["intermediates"]),
      variables, jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
  block = inter["intermediates"]["layer2_0"]
  # layer1 output is 16x16; conv1 (1x1) keeps it, conv2 (3x3) halves it.
  assert block["conv1"]["__call__"][0].shape == (1, 16, 16, 128)
  assert block["conv2"]["__call__"][0].shape == (1, 8, 8, 128)
  assert block["downsample_conv"]["__call__"][0].shape == (1, 8, 8, 512)
  assert variables["params"]["layer2_0"]["conv2"]["kernel"].shape == (
      3, 3, 128, 128)
  assert "downsample_conv" not in variables["params"]["layer2_1"]


def test_resnet18_forward_train_and_eval():
  model = resnet.ResNet(18)
  x = jnp.asarray(np.random.default_rng(0).uniform(size=(2, 64, 64, 3)),
                  jnp.float32)
  variables = numpy_variables(jax.eval_shape(
      lambda x: model.init(jax.random.key(0), x, train=False), x))

  @jax.jit
  def run(variables, x):
    y_train, updates = model.apply(variables, x, train=True,
                                   mutable=["batch_stats"])
    y_eval = model.apply(variables, x, train=False)
    return y_train, updates, y_eval

  y_train, updates, y_eval = run(variables, x)
  assert y_train.shape == y_eval.shape == (2, 2, 2, 512)
  assert np.all(np.isfinite(y_train)) and np.all(np.isfinite(y_eval))
  assert np.all(np.asarray(y_eval) >= 0)  # ends with a ReLU.
  # Training mode moves the running statistics by 10% towards the batch.
  old = variables["batch_stats"]["bn1"]["mean"]
  new = updates["batch_stats"]["bn1"]["mean"]
  assert np.all(np.asarray(old) == 0)
  assert float(jnp.abs(new).max()) > 0
  # Batch statistics differ from the initial running ones -> outputs differ.
  assert float(jnp.abs(y_train - y_eval).max()) > 1e-3


def test_bfloat16_compute_keeps_float32_params():
  model, variables = _abstract_variables(18, dtype=jnp.bfloat16)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables,
                       jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
  assert out.dtype == jnp.bfloat16


def test_bad_depth_and_rank_raise():
  with pytest.raises(ValueError, match="depth"):
    _abstract_variables(20)
  with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
    _abstract_variables(18, shape=(64, 64, 3))


@pytest.mark.parametrize("strides,use_bias", [(1, True), (2, False)])
def test_pointwise_conv_equals_1x1_convolution(strides, use_bias):
  """Same parameters, outputs and gradients as nn.Conv with a 1x1 kernel
  (float32, tolerance 1e-5 relative to the largest entry)."""
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 6, 4)),
                  jnp.float32)
  fast = resnet.PointwiseConv(3, strides, use_bias=use_bias)
  plain = nn.Conv(3, (1, 1), strides=(strides, strides), padding="VALID",
                  use_bias=use_bias, kernel_init=resnet.conv_init)
  params = fast.init(jax.random.key(1), x)
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(
      jnp.shape, plain.init(jax.random.key(1), x))
  params = jax.tree.map(lambda p: p + 0.1, params)  # A non-zero bias.
  cot = jnp.asarray(np.random.default_rng(1).normal(
      size=plain.apply(params, x).shape), jnp.float32)

  def value_and_grads(module):
    loss = lambda p, v: jnp.sum(module.apply(p, v) * cot)
    return module.apply(params, x), jax.grad(loss, argnums=(0, 1))(params, x)

  for a, b in zip(jax.tree.leaves(value_and_grads(fast)),
                  jax.tree.leaves(value_and_grads(plain))):
    scale = float(jnp.abs(b).max())
    np.testing.assert_allclose(a / scale, b / scale, atol=1e-5)
