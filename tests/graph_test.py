"""Tests of xsup.models.graph (dense-adjacency graph layers)."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import test_util

from xsup import skeleton
from xsup.models import graph

ADJ = skeleton.H36M17.adjacency(self_loops=True)
NUM = ADJ.shape[0]
# A fixed relabelling of the 17 joints: new joint n is old joint PERM[n].
PERM = np.random.RandomState(0).permutation(NUM)


def _rand(seed, shape, scale=1.0):
  return scale * jax.random.normal(jax.random.PRNGKey(seed), shape)


def _init(module, seed, *args, **kwargs):
  """Jitted `module.init` (one compile instead of many eager ones)."""
  init = jax.jit(functools.partial(module.init, **kwargs))
  return init(jax.random.PRNGKey(seed), *args)


def _permute_adjacency(adj, perm):
  return adj[perm][:, perm]


def _sem_params(adj, c_in, c_out, seed=0):
  """SemGraphConv params with random (non-uniform) edge logits."""
  layer = graph.SemGraphConv(c_out, adj)
  params = _init(layer, seed, jnp.zeros((1, adj.shape[0], c_in)))["params"]
  logits = _rand(seed + 100, params["edge_logits"].shape)
  return dict(params, edge_logits=logits)


def test_sinusoidal_encoding_values():
  code = graph.sinusoidal_joint_encoding(3, 4)
  assert code.shape == (3, 4)
  np.testing.assert_allclose(code[0], [0.0, 1.0, 0.0, 1.0], atol=1e-7)
  np.testing.assert_allclose(
      code[2], [math.sin(2), math.cos(2), math.sin(0.02), math.cos(0.02)],
      rtol=1e-6)
  ref = graph.sinusoidal_joint_encoding(3, 3, reference_exponent=True)
  np.testing.assert_allclose(
      ref[2], [math.sin(2), math.cos(2 / 10000**(2 / 3)),
               math.sin(2 / 10000**(4 / 3))], rtol=1e-6)


def test_semgraphconv_init_is_row_mean():
  """With all logits 1 the edge weights are 1/deg over each row."""
  layer = graph.SemGraphConv(5, ADJ)
  x = _rand(1, (2, NUM, 3))
  params = _init(layer, 0, x)["params"]
  out = layer.apply({"params": params}, x)
  w0, w1 = np.asarray(params["kernel"][0]), np.asarray(params["kernel"][1])
  xn = np.asarray(x)
  deg = ADJ.sum(axis=1)
  expected = np.zeros((2, NUM, 5))
  for i in range(NUM):
    expected[:, i] = xn[:, i] @ w0 / deg[i]
    for j in range(NUM):
      if j != i and ADJ[i, j]:
        expected[:, i] += xn[:, j] @ w1 / deg[i]
  expected += np.asarray(params["bias"])
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  assert params["edge_logits"].shape == (int(ADJ.sum()),)


def test_semgraphconv_kernel_init_bounds():
  x = jnp.zeros((1, NUM, 64))
  default = _init(graph.SemGraphConv(32, ADJ), 0, x)
  ref = _init(graph.SemGraphConv(32, ADJ, reference_init=True), 0, x)
  k_def = np.abs(default["params"]["kernel"]).max()
  k_ref = np.abs(ref["params"]["kernel"]).max()
  assert k_def <= 1.414 * math.sqrt(6 / (64 + 32))
  assert k_def > 0.8 * 1.414 * math.sqrt(6 / (64 + 32))
  assert k_ref <= 1.414 * math.sqrt(6 / (64 * 32 + 2 * 32))
  bias = np.abs(default["params"]["bias"]).max()
  assert bias <= 1 / math.sqrt(32)


def test_semgraphconv_permutation_consistency():
  params = _sem_params(ADJ, 3, 4)
  x = _rand(2, (2, NUM, 3))
  out = graph.SemGraphConv(4, ADJ).apply({"params": params}, x)

  adj_p = _permute_adjacency(ADJ, PERM)
  dense = np.zeros((NUM, NUM), np.float32)
  dense[np.nonzero(ADJ)] = np.asarray(params["edge_logits"])
  logits_p = dense[PERM][:, PERM][np.nonzero(adj_p)]
  params_p = dict(params, edge_logits=jnp.asarray(logits_p))
  out_p = graph.SemGraphConv(4, adj_p).apply({"params": params_p},
                                             x[:, PERM])
  np.testing.assert_allclose(out_p, out[:, PERM], rtol=1e-5, atol=1e-5)


def test_semgraphconv_only_neighbours_matter():
  params = _sem_params(ADJ, 3, 4, seed=3)
  layer = graph.SemGraphConv(4, ADJ)
  x = _rand(4, (1, NUM, 3))
  out = layer.apply({"params": params}, x)
  i = 8  # thorax: neighbours 7, 9, 11, 14 and itself.
  for k in range(NUM):
    out_k = layer.apply({"params": params}, x.at[:, k].add(1.5))
    changed = np.abs(out_k[0, i] - out[0, i]).max() > 1e-4
    assert changed == bool(ADJ[i, k]), k


def test_semgraphconv_gradients():
  adj = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], np.float32)
  params = _sem_params(adj, 2, 2, seed=5)
  layer = graph.SemGraphConv(2, adj)
  x = _rand(6, (2, 3, 2))
  f = jax.jit(lambda p, xx: jnp.sum(jnp.sin(layer.apply({"params": p}, xx))))
  test_util.check_grads(f, (params, x), order=1, modes=("fwd", "rev"),
                        eps=1e-2, atol=2e-2, rtol=2e-2)


def test_semgraphconv_rejects_bad_input():
  with pytest.raises(ValueError, match="SemGraphConv"):
    graph.SemGraphConv(2, np.ones((3, 4))).init(jax.random.PRNGKey(0),
                                                jnp.zeros((1, 3, 2)))
  with pytest.raises(ValueError, match="SemGraphConv"):
    _init(graph.SemGraphConv(2, ADJ), 0, jnp.zeros((1, 5, 2)))


def _path3():
  return np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float32)


def test_gcnconv_hand_computed_path():
  layer = graph.GCNConv(1, _path3())
  params = {"kernel": jnp.ones((1, 1)), "bias": jnp.zeros((1,))}
  x = jnp.array([[[1.0], [2.0], [3.0]]])
  out = np.asarray(layer.apply({"params": params}, x))[0, :, 0]
  # A + I = [[1,1,0],[1,1,1],[0,1,1]], degrees 2, 3, 2.
  s6 = math.sqrt(6.0)
  expected = [1 / 2 + 2 / s6, 1 / s6 + 2 / 3 + 3 / s6, 2 / s6 + 3 / 2]
  np.testing.assert_allclose(out, expected, rtol=1e-6)
  # Self loops already present are not doubled.
  with_loops = graph.GCNConv(1, _path3() + np.eye(3))
  np.testing.assert_allclose(with_loops.apply({"params": params}, x)[0, :, 0],
                             expected, rtol=1e-6)
  # Edge weights w01 = 2, w12 = 0.5: A = [[1,2,0],[2,1,.5],[0,.5,1]],
  # degrees 3, 3.5, 1.5.
  w = jnp.array([[0.0, 2.0, 0.0], [2.0, 0.0, 0.5], [0.0, 0.5, 0.0]])
  out_w = np.asarray(layer.apply({"params": params}, x, w))[0, :, 0]
  d = [3.0, 3.5, 1.5]
  expected_w = [
      1 / d[0] * 1 + 2 / math.sqrt(d[0] * d[1]) * 2,
      2 / math.sqrt(d[0] * d[1]) * 1 + 1 / d[1] * 2 +
      0.5 / math.sqrt(d[1] * d[2]) * 3,
      0.5 / math.sqrt(d[1] * d[2]) * 2 + 1 / d[2] * 3,
  ]
  np.testing.assert_allclose(out_w, expected_w, rtol=1e-6)


def test_gcnconv_permutation_consistency():
  layer = graph.GCNConv(4, ADJ)
  x = _rand(7, (2, NUM, 3))
  w = jnp.abs(_rand(8, (2, NUM, NUM))) + 0.1
  w = w + jnp.swapaxes(w, -1, -2)
  params = _init(layer, 0, x, w)
  params = jax.tree_util.tree_map(lambda a: a + 0.1, params)  # bias != 0
  out = layer.apply(params, x, w)
  layer_p = graph.GCNConv(4, _permute_adjacency(ADJ, PERM))
  out_p = layer_p.apply(params, x[:, PERM], w[:, PERM][:, :, PERM])
  np.testing.assert_allclose(out_p, out[:, PERM], rtol=1e-5, atol=1e-5)


def test_sageconv_hand_computed_mean():
  layer = graph.SAGEConv(1, _path3())
  params = {"lin_neighbours": {"kernel": jnp.ones((1, 1)),
                               "bias": jnp.full((1,), 0.5)},
            "lin_root": {"kernel": jnp.full((1, 1), 10.0)}}
  x = jnp.array([[[1.0], [2.0], [4.0]]])
  out = np.asarray(layer.apply({"params": params}, x))[0, :, 0]
  # Neighbour means: 2, (1 + 4) / 2, 2.
  np.testing.assert_allclose(out, [2 + 0.5 + 10, 2.5 + 0.5 + 20,
                                   2 + 0.5 + 40], rtol=1e-6)
  # With self loops the mean includes the node: 1.5, 7/3, 3.
  looped = graph.SAGEConv(1, _path3() + np.eye(3))
  out_l = np.asarray(looped.apply({"params": params}, x))[0, :, 0]
  np.testing.assert_allclose(out_l, [1.5 + 0.5 + 10, 7 / 3 + 0.5 + 20,
                                     3 + 0.5 + 40], rtol=1e-6)


def test_sageconv_permutation_consistency():
  layer = graph.SAGEConv(4, ADJ)
  x = _rand(9, (2, NUM, 3))
  params = _init(layer, 1, x)
  out = layer.apply(params, x)
  out_p = graph.SAGEConv(4, _permute_adjacency(ADJ, PERM)).apply(
      params, x[:, PERM])
  np.testing.assert_allclose(out_p, out[:, PERM], rtol=1e-5, atol=1e-5)


def test_graph_layer_norm_per_pose():
  norm = graph.GraphLayerNorm()
  x = _rand(10, (3, 5, 4), scale=3.0) + 2.0
  params = _init(norm, 0, x)
  out = np.asarray(norm.apply(params, x))
  np.testing.assert_allclose(out.mean(axis=(1, 2)), 0.0, atol=1e-5)
  np.testing.assert_allclose(out.var(axis=(1, 2)), 1.0, rtol=1e-3)
  other = x.at[1:].multiply(7.0)
  np.testing.assert_allclose(norm.apply(params, other)[0], out[0], atol=1e-6)
  # The batch-wide variant lets the other poses change pose 0's output.
  wide = graph.GraphLayerNorm(batch_wide=True)
  assert np.abs(wide.apply(params, other)[0] - wide.apply(params, x)[0]).max(
  ) > 1e-2
  np.testing.assert_allclose(np.asarray(wide.apply(params, x)).std(), 1.0,
                             rtol=1e-3)


def test_graph_non_local_matches_naive_computation():
  groups = ((0, 2), (1,))
  block = graph.GraphNonLocal(groups, inter_features=1)
  x = _rand(11, (1, 3, 2))
  variables = _init(block, 2, x, train=False)
  params = jax.tree_util.tree_map(
      lambda a: a + _rand(12, a.shape, 0.5), variables["params"])
  variables = dict(variables, params=params)
  out = np.asarray(block.apply(variables, x, train=False))[0]

  p = jax.tree_util.tree_map(np.asarray, params)
  xn = np.asarray(x)[0]
  lin = lambda name, v: v @ p[name]["kernel"] + p[name]["bias"]
  theta = lin("theta", xn)[:, 0]
  phi, g = lin("phi", xn)[:, 0], lin("g", xn)[:, 0]
  keys = [max(phi[0], phi[2]), phi[1]]  # one key per group
  vals = [max(g[0], g[2]), g[1]]
  wq, wk = p["concat_kernel"][:, 0]
  bn_scale = p["out_bn"]["scale"] / math.sqrt(1 + 1e-5)
  for i in range(3):
    y = sum(max(wq * theta[i] + wk * keys[m], 0.0) / 2 * vals[m]
            for m in range(2))
    w_y = (y * p["out"]["kernel"][0] + p["out"]["bias"]) * bn_scale
    np.testing.assert_allclose(out[i], xn[i] + w_y + p["out_bn"]["bias"],
                               rtol=1e-5, atol=1e-5)


def test_graph_non_local_starts_as_identity_and_permutes():
  groups = skeleton.H36M17_NONLOCAL_GROUPS
  block = graph.GraphNonLocal(groups)
  x = _rand(13, (2, NUM, 6))
  variables = _init(block, 3, x, train=False)
  np.testing.assert_allclose(block.apply(variables, x, train=False), x,
                             atol=1e-6)
  params = dict(variables["params"])
  params["out_bn"] = {"scale": jnp.ones(6), "bias": jnp.zeros(6)}
  variables = dict(variables, params=params)
  out = block.apply(variables, x, train=False)
  inv = np.argsort(PERM)  # old joint j is new joint inv[j]
  groups_p = tuple(tuple(int(inv[j]) for j in g) for g in groups)
  out_p = graph.GraphNonLocal(groups_p).apply(variables, x[:, PERM],
                                              train=False)
  np.testing.assert_allclose(out_p, out[:, PERM], rtol=1e-5, atol=1e-5)


def test_graph_non_local_rejects_bad_groups():
  with pytest.raises(ValueError, match="exactly once"):
    graph.GraphNonLocal(((0, 1), (1, 2))).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 3, 4)), train=False)


# Straightforward formulas of the layers (the joints reordered by group, an
# einsum over the joint axis, one max per group), against which the
# optimised implementations are checked: outputs and gradients with
# respect to every parameter and the input, float32, tolerance 1e-4
# relative to the largest entry.
_TOL = 1e-4


def _close(got, want):
  got, want = np.asarray(got), np.asarray(want)
  scale = max(float(np.abs(want).max()), 1e-6)
  np.testing.assert_allclose(got / scale, want / scale, rtol=0, atol=_TOL)


def _sem_reference(params, adj, x):
  rows, cols = np.nonzero(adj)
  num = adj.shape[0]
  dense = jnp.full((num, num), -1e30).at[rows, cols].set(
      params["edge_logits"])
  weights = jax.nn.softmax(dense, axis=-1)
  eye = jnp.eye(num)
  h_self = x @ params["kernel"][0]
  h_neigh = x @ params["kernel"][1]
  return (jnp.diagonal(weights)[:, None] * h_self + jnp.einsum(
      "ij,...jc->...ic", weights * (1 - eye), h_neigh) + params["bias"])


@pytest.mark.parametrize("c_in,c_out", [(2, 16), (16, 16), (16, 1)])
def test_semgraphconv_matches_reference_formula(c_in, c_out):
  params = _sem_params(ADJ, c_in, c_out, seed=7)
  layer = graph.SemGraphConv(c_out, ADJ)
  x = _rand(8, (3, 2, NUM, c_in))  # Two leading axes.
  fast = lambda p, xx: layer.apply({"params": p}, xx)
  ref = lambda p, xx: _sem_reference(p, ADJ, xx)
  _close(fast(params, x), ref(params, x))
  cot = _rand(9, (3, 2, NUM, c_out))
  grad = lambda f: jax.grad(lambda p, xx: jnp.sum(f(p, xx) * cot),
                            argnums=(0, 1))(params, x)
  jax.tree.map(_close, grad(fast), grad(ref))


def _non_local_reference(params, groups, x, reference_pooling):
  """GraphNonLocal written out: reorder, theta/phi/g, pool, f, W, BN."""
  order = np.array([j for g in groups for j in g])
  restore = np.argsort(order)
  xg = x[..., order, :]
  lin = lambda name, v: v @ params[name]["kernel"] + params[name]["bias"]
  theta, phi, g = lin("theta", xg), lin("phi", xg), lin("g", xg)
  if reference_pooling:
    window = len(groups[0])
    count = order.size // window
    pool = lambda h: jnp.max(h[..., :count * window, :].reshape(
        h.shape[:-2] + (count, window, h.shape[-1])), axis=-2)
  else:
    bounds = np.cumsum([0] + [len(gr) for gr in groups])
    pool = lambda h: jnp.stack([jnp.max(h[..., a:b, :], axis=-2)
                                for a, b in zip(bounds[:-1], bounds[1:])],
                               axis=-2)
  phi, g = pool(phi), pool(g)
  inter = theta.shape[-1]
  proj = params["concat_kernel"][:, 0]
  f = jax.nn.relu((theta @ proj[:inter])[..., :, None] +
                  (phi @ proj[inter:])[..., None, :]) / phi.shape[-2]
  w_y = lin("out", f @ g)
  bn = params["out_bn"]  # Eval mode with running mean 0, variance 1.
  w_y = w_y / jnp.sqrt(1 + 1e-5) * bn["scale"] + bn["bias"]
  return (xg + w_y)[..., restore, :]


@pytest.mark.parametrize("reference_pooling", [False, True])
def test_graph_non_local_matches_reference_formula(reference_pooling):
  groups = skeleton.H36M17_NONLOCAL_GROUPS
  block = graph.GraphNonLocal(groups, reference_pooling=reference_pooling)
  x = _rand(14, (4, NUM, 12))
  variables = _init(block, 4, x, train=False)
  params = jax.tree_util.tree_map(
      lambda a: a + _rand(15, a.shape, 0.3), variables["params"])
  stats = variables["batch_stats"]
  fast = lambda p, xx: block.apply({"params": p, "batch_stats": stats}, xx,
                                   train=False)
  ref = lambda p, xx: _non_local_reference(p, groups, xx, reference_pooling)
  _close(fast(params, x), ref(params, x))
  cot = _rand(16, x.shape)
  grad = lambda f: jax.grad(lambda p, xx: jnp.sum(f(p, xx) * cot),
                            argnums=(0, 1))(params, x)
  jax.tree.map(_close, grad(fast), grad(ref))


def test_group_max_values_and_gradients():
  keys = ((3, 0), (1,), (0, 1, 3))  # Joint 2 in no key, joint 0 in two.
  x = _rand(17, (2, 4, 5))
  want = jnp.stack([jnp.max(x[:, np.array(k)], axis=1) for k in keys], 1)
  np.testing.assert_array_equal(graph.group_max(x, keys), want)
  test_util.check_grads(lambda v: graph.group_max(v, keys), (x,), order=1,
                        modes=("rev",))
  grad = jax.grad(lambda v: jnp.sum(graph.group_max(v, keys)))(x)
  np.testing.assert_array_equal(grad[:, 2], 0.0)
  # A tie shares the gradient equally, as jnp.max does.
  tied = jnp.ones((1, 4, 1))
  np.testing.assert_allclose(
      jax.grad(lambda v: jnp.sum(graph.group_max(v, ((0, 1),))))(tied)[0, :, 0],
      [0.5, 0.5, 0.0, 0.0])


def test_mix_joints_equals_matrix_product():
  w = _rand(18, (NUM, NUM))
  x = _rand(19, (2, 3, NUM, 4))
  _close(graph.mix_joints(w, x), jnp.einsum("ij,abjc->abic", w, x))
  _close(graph.mix_joints(w, x[0, 0]), w @ x[0, 0])
