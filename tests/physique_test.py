"""Tests of xsup.models.physique."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xsup.models import physique


def _init(model, x):
  """Variables with numpy random values (compiling the random initialisers
  of every layer is slow on a loaded CPU; shapes come from eval_shape)."""
  shapes = jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0), x, train=False))
  rng = np.random.default_rng(0)
  params = jax.tree_util.tree_map(
      lambda s: jnp.asarray(rng.normal(0.0, 0.3, s.shape), s.dtype),
      shapes["params"])
  stats = jax.tree_util.tree_map_with_path(
      lambda path, s: (jnp.ones if path[-1].key == "var" else jnp.zeros)(
          s.shape, s.dtype), shapes["batch_stats"])
  return {"params": params, "batch_stats": stats}


def test_output_shape_range_and_batch_stats():
  model = physique.PhysiqueNet(features=(4, 8, 16))
  x = jnp.asarray(np.random.default_rng(1).uniform(size=(2, 16, 16, 1)),
                  jnp.float32)
  variables = _init(model, x)
  assert set(variables) == {"params", "batch_stats"}

  @jax.jit
  def train_apply(variables, x):
    return model.apply(variables, x, train=True, mutable=["batch_stats"])

  out, updates = train_apply(variables, x)
  assert out.shape == (2, 16, 16, 1)
  out = np.asarray(out)
  assert np.all(out > 0.0) and np.all(out < 1.0)
  # Training mode moves the running statistics away from their init.
  old = jax.tree_util.tree_leaves(variables["batch_stats"])
  new = jax.tree_util.tree_leaves(updates["batch_stats"])
  assert any(not np.allclose(a, b) for a, b in zip(old, new))
  eval_out = jax.jit(lambda v, x: model.apply(v, x, train=False))(
      variables, x)
  assert eval_out.shape == (2, 16, 16, 1)


def test_default_architecture_layers():
  model = physique.PhysiqueNet()
  x = jnp.zeros((1, 8, 8, 1))
  params = jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0), x))["params"]
  kernels = [v["Conv_0"]["kernel"].shape for k, v in sorted(
      params.items(), key=lambda kv: int(kv[0].split("_")[-1]))
             if k.startswith("ConvBlock")]
  # encoder 1->32, 32->32, 32->64 (s2), 64->64, 64->128 (s2);
  # decoder 128->128, 128->64 (up), 64->64, 64->32 (up).
  assert [(k[2], k[3]) for k in kernels] == [
      (1, 32), (32, 32), (32, 64), (64, 64), (64, 128), (128, 128),
      (128, 64), (64, 64), (64, 32)]
  assert params["Conv_0"]["kernel"].shape == (3, 3, 32, 1)
  assert params["Conv_0"]["bias"].shape == (1,)


def test_bilinear_upsample_matches_half_pixel_rule():
  x = jnp.arange(4.0).reshape(1, 2, 2, 1)
  up = physique.upsample_bilinear_2x(x)[0, :, :, 0]
  # Half-pixel centres: output row 1 sits at input row 0.25.
  row = np.array([0.0, 0.25, 0.75, 1.0])
  expected = (2.0 * row[:, None] + row[None, :])
  np.testing.assert_allclose(up, expected, atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (1, 8, 8, 2)])
def test_bilinear_upsample_equals_jax_image_resize(shape):
  rng = np.random.default_rng(sum(shape))
  x = jnp.asarray(rng.normal(size=shape), jnp.float32)
  b, h, w, c = shape

  def resize(x):
    return jax.image.resize(x, (b, 2 * h, 2 * w, c), method="bilinear",
                            antialias=False)

  np.testing.assert_allclose(physique.upsample_bilinear_2x(x), resize(x),
                             atol=1e-5)
  cotangent = jnp.asarray(rng.normal(size=(b, 2 * h, 2 * w, c)), jnp.float32)
  ours, ref = (jax.grad(lambda x, f=f: jnp.sum(f(x) * cotangent))(x)
               for f in (physique.upsample_bilinear_2x, resize))
  np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_bad_size_raises():
  model = physique.PhysiqueNet(features=(4, 8, 16))
  with pytest.raises(ValueError, match="divisible"):
    jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                      jnp.zeros((1, 10, 10, 1))))
