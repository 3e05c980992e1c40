"""Tests of xsup.models.student (ITES semantic-GCN lifter)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xsup import skeleton
from xsup.models import graph
from xsup.models import student

NUM = skeleton.H36M17.num_joints
GROUPS = skeleton.H36M17_NONLOCAL_GROUPS


def _init(module, seed, *args, **kwargs):
  init = jax.jit(functools.partial(module.init, **kwargs))
  return init(jax.random.PRNGKey(seed), *args)


def _small(**kwargs):
  return student.Student(hidden=8, num_blocks=1, **kwargs)


@pytest.fixture(scope="module")
def small_variables():
  """Variables of `_small()` (the dropout rate does not change them)."""
  return _init(_small(), 0, jnp.zeros((3, NUM, 2)), train=False)


@pytest.fixture(scope="module")
def non_local_variables():
  """GraphNonLocal(GROUPS, 8 channels) variables, BatchNorm scale set to 1."""
  block = graph.GraphNonLocal(GROUPS)
  variables = _init(block, 3, jnp.zeros((2, NUM, 8)), train=False)
  params = dict(variables["params"])
  params["out_bn"] = {"scale": jnp.ones(8), "bias": jnp.zeros(8)}
  return dict(variables, params=params)


def test_student_shapes_and_batch_stats(small_variables):
  model = _small()
  x = jax.random.normal(jax.random.PRNGKey(0), (3, NUM, 2)) * 0.2
  variables = small_variables
  params = variables["params"]
  assert set(params) == {"input", "block0_0", "block0_1", "output"}
  assert "non_local" not in params["input"]
  assert "non_local" in params["block0_0"]
  assert params["output"]["kernel"].shape == (2, 8, 1)

  depth = model.apply(variables, x, train=False)
  assert depth.shape == (3, NUM, 1)
  assert np.all(np.isfinite(depth))
  depth_t, updates = model.apply(variables, x, train=True,
                                 mutable=("batch_stats",))
  assert depth_t.shape == (3, NUM, 1)
  before = variables["batch_stats"]["input"]["bn"]["mean"]
  after = updates["batch_stats"]["input"]["bn"]["mean"]
  assert np.abs(after - before).max() > 0
  # In eval mode a pose's depth does not depend on the rest of the batch.
  other = x.at[1:].multiply(3.0)
  np.testing.assert_allclose(model.apply(variables, other, train=False)[0],
                             depth[0], rtol=1e-5, atol=1e-6)


def test_student_default_sizes_and_reference_variants_share_params():
  x = jnp.zeros((1, NUM, 2))

  def shapes(model):
    abstract = jax.eval_shape(functools.partial(model.init, train=False),
                              jax.random.PRNGKey(0), x)
    return jax.tree_util.tree_map(lambda a: a.shape, abstract)

  default = shapes(student.Student())
  assert len([k for k in default["params"] if k.startswith("block")]) == 8
  assert default["params"]["input"]["gconv"]["kernel"] == (2, 2, 128)
  assert default == shapes(student.Student(reference_pooling=True,
                                           reference_init=True))


def test_student_dropout_needs_train_and_rng(small_variables):
  model = _small(dropout=0.5)
  x = jax.random.normal(jax.random.PRNGKey(1), (2, NUM, 2))
  variables = small_variables
  a = model.apply(variables, x, train=False)
  np.testing.assert_allclose(model.apply(variables, x, train=False), a)

  def run(seed):
    return model.apply(variables, x, train=True, mutable=("batch_stats",),
                       rngs={"dropout": jax.random.PRNGKey(seed)})[0]

  assert np.abs(run(0) - run(1)).max() > 1e-6


def test_student_rejects_bad_input():
  with pytest.raises(ValueError, match="Student"):
    _small().init(jax.random.PRNGKey(0), jnp.zeros((2, NUM, 3)), train=False)


@pytest.mark.parametrize("reference_pooling", [False, True])
def test_non_local_joint9_key_value(non_local_variables, reference_pooling):
  """Joint 9 (a singleton group) is a key/value only with per-group pooling."""
  block = graph.GraphNonLocal(GROUPS, reference_pooling=reference_pooling)
  x = jax.random.normal(jax.random.PRNGKey(2), (2, NUM, 8))
  variables = non_local_variables
  apply = functools.partial(block.apply, train=False)
  out = apply(variables, x)
  out9 = apply(variables, x.at[:, 9].set(5.0))
  others = np.array([j for j in range(NUM) if j != 9])
  diff = np.abs(out9 - out)[:, others].max()
  if reference_pooling:
    assert diff < 1e-6
  else:
    assert diff > 1e-3
  # Joint 9's own output changes either way (its query and the residual).
  assert np.abs(out9 - out)[:, 9].max() > 1e-3
