"""Tests of xsup.models.render."""

import jax
import jax.numpy as jnp
from jax import test_util as jtu
import numpy as np
import pytest

from xsup import skeleton as skel
from xsup.models import render

S = 9  # grid ticks at -1, -0.75, ..., 1 (step 0.25).

_STATIC = ("size", "links", "body_width", "arm_width_scale")
# Jitted once per static configuration: far fewer dispatches than eager mode.
_render = jax.jit(render.render_skeleton, static_argnames=_STATIC)
_render_links = jax.jit(render.render_link_heatmaps, static_argnames=_STATIC)


def _grid_x(i, size=S):
  return 2.0 * i / (size - 1) - 1.0


def test_link_set_matches_the_published_list():
  links = render.line_links()
  assert len(links) == 25
  parents = [0, 0, 1, 2, 0, 4, 5, 0, 17, 8, 9, 17, 11, 12, 17, 14, 15, 7]
  assert links[:17] == tuple((c, parents[c]) for c in range(1, 18))
  assert links[17:] == tuple(zip([1, 4, 11, 14, 2, 5, 14, 11],
                                 [7, 7, 7, 7, 0, 0, 1, 4]))
  scales = render.link_width_scales(links)
  assert np.flatnonzero(scales != 1.0).tolist() == [11, 12, 14, 15]
  assert len(render.line_links(extension=False)) == 17
  assert skel.H36M18.num_joints == 18


def test_grid_orientation():
  grid = render.coordinate_grid(S)
  assert grid.shape == (S, S, 2)
  # x varies along columns, y along rows, corners at -1 and 1.
  np.testing.assert_allclose(grid[0, :, 0], [_grid_x(i) for i in range(S)])
  np.testing.assert_allclose(grid[:, 0, 1], [_grid_x(i) for i in range(S)])
  np.testing.assert_allclose(grid[3, 5], [_grid_x(5), _grid_x(3)])


def test_single_segment_value_on_line_and_at_known_distance():
  # Horizontal segment on row 4 (y = 0) from x = -0.5 to x = 0.5.
  joints = jnp.array([[[-0.5, 0.0], [0.5, 0.0]]])
  heat = _render(joints, size=S, links=((0, 1),), body_width=3.0)
  assert heat.shape == (1, S, S, 1)
  w = 3.0e-3
  heat = np.asarray(heat[0, :, :, 0])
  # On the segment (columns 2..6 of row 4): exactly 1.
  np.testing.assert_allclose(heat[4, 2:7], 1.0)
  # One row above: perpendicular distance 0.25.
  np.testing.assert_allclose(heat[3, 4], np.exp(-0.25**2 / w), rtol=1e-5)
  # Beyond the end: clamped to the endpoint, distance 0.25 along x ...
  np.testing.assert_allclose(heat[4, 7], np.exp(-0.25**2 / w), rtol=1e-5)
  # ... and diagonally off the end: squared distance 0.25^2 + 0.25^2.
  np.testing.assert_allclose(heat[3, 7], np.exp(-0.125 / w), rtol=1e-5)


def test_wide_line_decay_formula_everywhere():
  joints = jnp.array([[[-0.6, -0.2], [0.3, 0.7]]])
  bw = 200.0  # wide enough that no value underflows
  heat = np.asarray(_render(joints, size=S, links=((0, 1),),
                            body_width=bw))[0, :, :, 0]
  a, b = np.array([-0.6, -0.2]), np.array([0.3, 0.7])
  for r in range(S):
    for c in range(S):
      p = np.array([_grid_x(c), _grid_x(r)])
      t = np.clip(np.dot(p - a, b - a) / np.dot(b - a, b - a), 0, 1)
      d2 = np.sum((p - a - t * (b - a))**2)
      np.testing.assert_allclose(heat[r, c], np.exp(-d2 / (bw * 1e-3)),
                                 rtol=1e-5)


def test_arm_links_are_half_width():
  # Same geometry drawn as a torso link and as an arm link.
  joints = np.zeros((1, 18, 2), np.float32)
  joints[0, :, 0] = np.linspace(-0.9, 0.9, 18)
  joints[0, 11] = [-0.5, 0.0]
  joints[0, 12] = [0.5, 0.0]   # (12, 11) is the left upper arm.
  joints[0, 1] = [-0.5, 0.0]
  joints[0, 0] = [0.5, 0.0]    # (1, 0) is the right hip bone.
  heat = _render_links(jnp.asarray(joints), size=S,
                      links=((1, 0), (12, 11)))
  body, arm = np.asarray(heat[0, 3, 4])
  w = 3.0e-3
  np.testing.assert_allclose(body, np.exp(-0.0625 / w), rtol=1e-4)
  np.testing.assert_allclose(arm, np.exp(-0.0625 / (0.5 * w)), rtol=1e-4)
  assert arm < body
  # On the line both are 1.
  np.testing.assert_allclose(heat[0, 4, 4], [1.0, 1.0])


def test_mask_is_max_over_links():
  key = jax.random.PRNGKey(0)
  joints = jax.random.uniform(key, (2, 18, 2), minval=-0.8, maxval=0.8)
  per_link = jax.jit(lambda j: render.render_link_heatmaps(
      j, S, body_width=50.0))(joints)
  mask = jax.jit(lambda j: render.render_skeleton(j, S, body_width=50.0))(
      joints)
  assert per_link.shape == (2, S, S, 25)
  np.testing.assert_allclose(mask[..., 0], per_link.max(-1), rtol=1e-6)


def test_degenerate_link_is_distance_to_point_with_finite_grad():
  joints = jnp.array([[[0.0, 0.0], [0.0, 0.0]]])
  f = lambda j: _render(j, size=S, links=((0, 1),), body_width=100.0).sum()
  heat = _render(joints, size=S, links=((0, 1),), body_width=100.0)
  np.testing.assert_allclose(heat[0, 4, 6, 0], np.exp(-0.25 / 0.1),
                             rtol=1e-5)
  assert np.all(np.isfinite(jax.grad(f)(joints)))


def test_gradients_wrt_joints():
  key = jax.random.PRNGKey(1)
  with jax.enable_x64(True):
    joints = jax.random.uniform(key, (1, 4, 2), jnp.float64, -0.7, 0.7)
    links = [(0, 1), (1, 2), (2, 3), (13, 12)]
    joints = jnp.concatenate(
        [joints, jax.random.uniform(jax.random.PRNGKey(2), (1, 14, 2),
                                    jnp.float64, -0.7, 0.7)], axis=1)

    @jax.jit
    def per_link(j):
      return render.render_link_heatmaps(j, 6, links=links, body_width=80.0)

    jtu.check_grads(per_link, (joints,), order=1, modes=("rev",), eps=1e-5)

    @jax.jit
    def mask(j):
      return render.render_skeleton(j, 5, links=links[:2], body_width=80.0)

    jtu.check_grads(mask, (joints,), order=1, modes=("rev",), eps=1e-5)


def test_bad_input_raises():
  with pytest.raises(ValueError, match="joints_2d"):
    render.render_skeleton(jnp.zeros((1, 18, 3)), S)
  with pytest.raises(ValueError, match="index outside"):
    render.render_skeleton(jnp.zeros((1, 5, 2)), S)
