"""Tests for xsup/models/integral.py."""

import jax
import jax.numpy as jnp
from jax import test_util as jtu
import numpy as np
import pytest

from xsup.models import integral

# Jitted once per (shape, num_hypo, neighbor_size): much faster than eager.
_integral = jax.jit(integral.integral_multi_hypothesis, static_argnums=(1, 2))
_select = jax.jit(integral.select_depth_hypotheses, static_argnums=(1,))
_window = jax.jit(integral.windowed_expectation, static_argnums=(2,))


def _normal(seed, shape, scale=1.0):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.normal(size=shape) * scale, jnp.float32)


def _one_hot_logits(shape, voxels, high=40.0):
  """`[B, J, D, H, W]` logits, -high everywhere, +high at voxels[b][j]."""
  logits = np.full(shape, -high, np.float32)
  for b, per_joint in enumerate(voxels):
    for j, (d, h, w) in enumerate(per_joint):
      logits[b, j, d, h, w] = high
  return jnp.asarray(logits)


@pytest.mark.parametrize("num_hypo", [1, 3])
def test_one_hot_volume_gives_voxel_coordinates(num_hypo):
  depth, height, width = 7, 5, 6  # non-cubic on purpose.
  voxels = [[(4, 2, 3), (1, 0, 5)], [(5, 4, 0), (3, 1, 1)]]
  logits = _one_hot_logits((2, 2, depth, height, width), voxels)
  out = _integral(logits, num_hypo, 3)
  assert out.joints.shape == (2, num_hypo, 2, 3)
  for b in range(2):
    for j in range(2):
      d, h, w = voxels[b][j]
      expected = [w / width * 2 - 1, h / height * 2 - 1, d / depth * 2 - 1]
      np.testing.assert_allclose(out.joints[b, 0, j], expected, atol=1e-5)
      assert int(out.depth_indices[b, 0, j]) == d


def test_three_bumps_give_three_depths_by_height():
  depth, height, width = 40, 3, 4
  centres, weights, sigma = [8, 18, 28], [0.3, 0.2, 0.5], 1.5
  bins = np.arange(depth)
  mix = sum(w * np.exp(-(bins - c)**2 / (2 * sigma**2))
            for c, w in zip(centres, weights)) + 1e-12
  rng = np.random.default_rng(0)
  xy = rng.normal(size=(height, width))
  logits = (np.log(mix)[:, None, None] + xy[None]).astype(np.float32)
  logits = jnp.asarray(logits[None, None])  # [1, 1, D, H, W]
  out = _integral(logits, 3, 9)
  np.testing.assert_array_equal(out.depth_indices[0, :, 0], [28, 8, 18])
  np.testing.assert_allclose(out.joints[0, :, 0, 2],
                             np.array([28, 8, 18]) / depth * 2 - 1, atol=1e-3)
  np.testing.assert_allclose(out.depth_marginals[0, 0], mix / mix.sum(),
                             rtol=1e-4, atol=1e-7)
  # x, y are the same soft-argmax for every hypothesis.
  np.testing.assert_array_equal(out.joints[0, 0, :, :2],
                                out.joints[0, 2, :, :2])


def _numpy_integral(logits):
  """Plain integral regression written out in numpy (float64)."""
  logits = np.asarray(logits, np.float64)
  b, j, d, h, w = logits.shape
  flat = logits.reshape(b, j, -1)
  p = np.exp(flat - flat.max(-1, keepdims=True))
  p = (p / p.sum(-1, keepdims=True)).reshape(logits.shape)
  ex = (p.sum((2, 3)) * np.arange(w)).sum(-1) / w * 2 - 1
  ey = (p.sum((2, 4)) * np.arange(h)).sum(-1) / h * 2 - 1
  ez = (p.sum((3, 4)) * np.arange(d)).sum(-1) / d * 2 - 1
  return np.stack([ex, ey, ez], -1)  # [B, J, 3]


def test_single_hypothesis_is_full_expectation_non_cubic():
  logits = _normal(0, (2, 3, 10, 6, 9), scale=2.0)
  out = _integral(logits, 1, 3)
  assert out.joints.shape == (2, 1, 3, 3)
  assert out.x_marginals.shape == (2, 3, 9)
  assert out.y_marginals.shape == (2, 3, 6)
  assert out.depth_marginals.shape == (2, 3, 10)
  np.testing.assert_allclose(out.joints[:, 0], _numpy_integral(logits),
                             atol=1e-5)


def test_multi_hypothesis_xy_matches_numpy_non_cubic():
  logits = _normal(1, (1, 2, 12, 5, 7))
  out = _integral(logits, 4, 5)
  expected = _numpy_integral(logits)[:, None, :, :2]
  np.testing.assert_allclose(out.joints[..., :2],
                             np.broadcast_to(expected, (1, 4, 2, 2)),
                             atol=1e-5)
  assert np.all(np.abs(np.asarray(out.joints)) <= 1.0)


def test_selection_and_window_by_hand():
  p = jnp.array([[0.1, 0.3, 0.05, 0.05, 0.4, 0.1]])
  # Peaks: bin 4 (0.4) and bin 1 (0.3); fill with the highest non-peak bin,
  # 0.1 at bins 0 and 5 -> the lower index, 0.
  centres = _select(p, 3)
  np.testing.assert_array_equal(centres, [[4, 1, 0]])
  z = _window(p, centres, 3)
  expected = [(3 * 0.05 + 4 * 0.4 + 5 * 0.1) / 0.55,
              (0 * 0.1 + 1 * 0.3 + 2 * 0.05) / 0.45,
              (0 * 0.1 + 1 * 0.3) / 0.4]  # bin -1 is zero padding.
  np.testing.assert_allclose(z, [expected], rtol=1e-6)


def test_fallback_without_peaks_and_plateaus():
  increasing = jnp.arange(1.0, 9.0)[None] / 36.0
  np.testing.assert_array_equal(
      _select(increasing, 3), [[7, 6, 5]])
  one_peak = jnp.array([[0.0, 0.1, 0.5, 0.2, 0.1, 0.05, 0.03, 0.02]])
  np.testing.assert_array_equal(
      _select(one_peak, 3), [[2, 3, 1]])
  plateau = jnp.array([[0.1, 0.3, 0.3, 0.1, 0.2]])
  # Both plateau bins are peaks; equal values -> lower index first.
  np.testing.assert_array_equal(
      _select(plateau, 3), [[1, 2, 4]])


def test_zero_mass_window_returns_centre():
  p = jnp.array([[0.0, 0.0, 0.0, 0.0, 0.0, 1.0]])
  z = _window(p, jnp.array([[1, 5]]), 3)
  np.testing.assert_allclose(z, [[1.0, 5.0]])
  grad = jax.jit(jax.grad(lambda q: integral.windowed_expectation(
      q, jnp.array([[1, 5]]), 3).sum()))(p)
  assert np.all(np.isfinite(grad))


def test_gradients_of_windowed_expectation_wrt_logits():
  profile = np.array([0.0, 3.0, 0.0, 0.0, 2.0, 0.0, 0.0, 1.0, 0.0, 0.0])

  def depths(logits):
    out = integral.integral_multi_hypothesis(logits, num_hypo=3,
                                             neighbor_size=3)
    return out.joints

  with jax.enable_x64(True):
    noise = np.random.default_rng(2).normal(size=(1, 2, 10, 2, 3)) * 0.3
    logits = jnp.asarray(profile[None, None, :, None, None] + noise,
                         jnp.float64)
    # The three peaks stay the chosen bins under small perturbations.
    np.testing.assert_array_equal(
        _integral(logits, 3, 3).depth_indices[0, :, 0], [1, 4, 7])
    jtu.check_grads(jax.jit(depths), (logits,), order=1, modes=("fwd", "rev"),
                    eps=1e-4, atol=1e-6, rtol=1e-5)
    g = jax.jit(jax.grad(lambda l: depths(l)[..., 2].sum()))(logits)
    assert float(jnp.abs(g).sum()) > 0


def test_bfloat16_logits_give_float32_joints():
  logits = _normal(3, (2, 2, 8, 4, 4))
  out = _integral(logits, 3, 5)
  low = _integral(logits.astype(jnp.bfloat16), 3, 5)
  assert low.joints.dtype == jnp.float32
  np.testing.assert_allclose(low.joints[..., :2], out.joints[..., :2],
                             atol=0.05)


def test_bad_arguments_raise():
  logits = jnp.zeros((1, 1, 4, 2, 2))
  with pytest.raises(ValueError, match="neighbor_size"):
    integral.integral_multi_hypothesis(logits, 2, neighbor_size=4)
  with pytest.raises(ValueError, match="num_hypo"):
    integral.integral_multi_hypothesis(logits, 5)
  with pytest.raises(ValueError, match=r"\[B, J, D, H, W\]"):
    integral.integral_multi_hypothesis(jnp.zeros((1, 4, 2, 2)), 1)


def test_channels_last_marginals_match_transposed_volume():
  """Same marginals and gradients as the softmax of the [B, J, D, H, W]
  volume (float32, tolerance 1e-5 on probabilities)."""
  logits = _normal(4, (2, 3, 5, 3, 4), scale=2.0)  # [B, H, W, J, D]
  volume = lambda l: jnp.transpose(l, (0, 3, 4, 1, 2))
  ref = lambda l: integral.marginals(integral.volume_softmax(volume(l)))
  got = jax.jit(integral.channels_last_marginals)(logits)
  for a, b in zip(got, ref(logits)):
    np.testing.assert_allclose(a, b, atol=1e-5)
  weights = [_normal(5 + i, m.shape) for i, m in enumerate(got)]

  def loss(fn):
    return lambda l: sum(jnp.sum(m * w) for m, w in zip(fn(l), weights))

  np.testing.assert_allclose(
      jax.grad(loss(integral.channels_last_marginals))(logits),
      jax.grad(loss(ref))(logits), atol=1e-5)
  with pytest.raises(ValueError, match=r"\[B, H, W, J, D\]"):
    integral.channels_last_marginals(jnp.zeros((1, 4, 2, 2)))
