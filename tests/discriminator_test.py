"""Tests of xsup.models.discriminator (X-as-Supervision pose discriminators)."""

import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xsup import skeleton
from xsup.models import discriminator

NAMES = sorted(discriminator.DISCRIMINATORS)
SKEL = skeleton.H36M18
SMALL = dict(input_dim=16, hidden_dim=16, output_dim=16)


def _poses(seed, batch=3):
  """Random root-relative H36M-18 poses, metres."""
  x = 0.3 * jax.random.normal(jax.random.PRNGKey(seed), (batch, 18, 3))
  return x - x[:, :1]


def _build(name, **kwargs):
  kw = dict(SMALL)
  if name == "res_sage_gcn_decouple":
    kw["head_dim"] = 32
  kw.update(kwargs)
  return discriminator.build_discriminator(name, **kw)


def _init(module, x, seed=0):
  """Variables of the right shapes, random, without compiling `init`."""
  abstract = jax.eval_shape(module.init, jax.random.PRNGKey(0), x)
  rng = np.random.RandomState(seed)
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(abstract))
  out = {}
  for path, leaf in flat.items():
    if path[0] == "batch_stats":
      value = np.full(leaf.shape, 1.0 if path[-1] == "var" else 0.0)
    else:
      std = 1.0 / np.sqrt(leaf.shape[0]) if len(leaf.shape) >= 2 else 0.1
      value = std * rng.randn(*leaf.shape)
    out[path] = jnp.asarray(value, leaf.dtype)
  return flax.traverse_util.unflatten_dict(out)


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_batch_independence(name):
  model = _build(name)
  x = _poses(1)
  variables = _init(model, x)
  apply = functools.partial(model.apply, train=False)
  score = apply(variables, x)
  assert score.shape == (3, 1)
  assert np.all(np.isfinite(score))
  # Pose 0's score ignores the other poses of the batch.
  other = x.at[1:].set(_poses(2)[1:] * 4.0)
  np.testing.assert_allclose(apply(variables, other)[0], score[0], rtol=1e-5,
                             atol=1e-6)


def test_default_discriminator_full_size_train_mode():
  model = discriminator.build_discriminator("res_sage_gcn_decouple")
  x = _poses(3, batch=2)
  variables = _init(model, x)
  head = variables["params"]["head_hidden"]["kernel"]
  assert head.shape == (18 * 2 * 128, 512)
  embed = variables["params"]["joint_stack"]["embed"]["kernel"]
  assert embed.shape == (6, 128)  # xyz + positional code
  apply = functools.partial(model.apply, train=True)
  a = apply(variables, x, rngs={"dropout": jax.random.PRNGKey(1)})
  b = apply(variables, x, rngs={"dropout": jax.random.PRNGKey(2)})
  assert a.shape == (2, 1)
  assert np.abs(a - b).max() > 0  # dropout active in training


def test_batch_wide_norm_reproduces_batch_dependence():
  model = _build("res_sage_gcn_decouple", batch_wide_norm=True)
  x = _poses(4)
  variables = _init(model, x)
  apply = functools.partial(model.apply, train=False)
  other = x.at[1:].multiply(5.0)
  assert np.abs(apply(variables, other)[0] - apply(variables, x)[0]).max(
  ) > 1e-5


def test_decoupled_not_invariant_to_left_right_swap():
  model = _build("res_sage_gcn_decouple")
  x = _poses(5)
  variables = _init(model, x)
  apply = functools.partial(model.apply, train=False)
  swapped = x[:, SKEL.flip_permutation]
  diff = np.abs(apply(variables, swapped) - apply(variables, x))
  assert np.all(diff > 1e-6)


def test_generator_gradient_reaches_joints():
  model = _build("res_sage_gcn_decouple")
  x = _poses(6)
  variables = _init(model, x)

  def loss(joints):
    return jnp.mean((model.apply(variables, joints) - 1.0)**2)

  grad = jax.grad(loss)(x)
  assert np.all(np.isfinite(grad))
  assert np.abs(grad).max() > 0


def test_inverse_bone_length_weights():
  x = np.zeros((1, 18, 3), np.float32)
  x[0, 1] = [2.0, 0.0, 0.0]  # bone (1, 0): length 2
  x[0, 2] = [2.0, 0.5, 0.0]  # bone (2, 1): length 0.5
  w = np.asarray(discriminator.inverse_bone_length_weights(jnp.asarray(x),
                                                           SKEL))[0]
  np.testing.assert_allclose(np.diag(w), 1.0)
  assert w[1, 0] == w[0, 1] == pytest.approx(0.5)
  assert w[2, 1] == w[1, 2] == pytest.approx(2.0)
  adj = SKEL.adjacency(self_loops=True)
  assert np.all(w[adj == 0] == 0)
  assert np.all(w[adj != 0] > 0)
  np.testing.assert_allclose(w, w.T)


def test_res_gcn_variants():
  model = _build("res_gcn", num_layers=1)
  x = _poses(7)
  variables = _init(model, x)
  apply = functools.partial(model.apply, train=False)
  assert apply(variables, x).shape == (3, 1)
  with_bn = _build("res_gcn", num_layers=1, use_batch_norm=True)
  v_bn = _init(with_bn, x)
  assert "bn0" in v_bn["params"]["block0"]
  out, _ = with_bn.apply(v_bn, x, train=True, mutable=["batch_stats"],
                         rngs={"dropout": jax.random.PRNGKey(0)})
  assert out.shape == (3, 1)


def test_unknown_name_and_bad_input():
  with pytest.raises(ValueError, match="res_sage_gcn_decouple"):
    discriminator.build_discriminator("transformer")
  with pytest.raises(ValueError, match="bad arguments"):
    discriminator.build_discriminator("simple_gcn", num_heads=4)
  model = _build("simple_gcn")
  with pytest.raises(ValueError, match="18"):
    model.init(jax.random.PRNGKey(0), jnp.zeros((2, 17, 3)))
