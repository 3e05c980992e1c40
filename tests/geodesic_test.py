"""Tests of xsup.geometry.geodesic."""

import numpy as np
import pytest

from xsup.geometry import geodesic


def _l_mask():
  """An L: vertical bar (cols 2..4, rows 2..29) + horizontal bar (rows
  25..29, cols 2..29)."""
  mask = np.zeros((32, 32), np.float32)
  mask[2:30, 2:5] = 1.0
  mask[25:30, 2:30] = 1.0
  return mask


def test_straight_corridor_equals_euclidean():
  mask = np.zeros((8, 40), np.float32)
  mask[3:6, 1:39] = 1.0
  dist = geodesic.geodesic_distance(mask, np.array([[1, 4]]))
  cols = np.arange(1, 39)
  np.testing.assert_allclose(dist[4, 1:39], cols - 1.0)
  assert np.all(np.isinf(dist[mask == 0]))
  # Off-axis but diagonal-reachable pixel: exact octile = Euclidean on 45deg.
  np.testing.assert_allclose(dist[5, 2], np.sqrt(2.0))


def test_l_shape_exceeds_euclidean():
  mask = _l_mask()
  src = np.array([[3, 3]])                 # top of the vertical bar
  dist = geodesic.geodesic_distance(mask, src)
  target = (27, 28)                        # far end of the horizontal bar
  euclid = np.hypot(target[0] - 3, target[1] - 3)
  assert dist[target] > euclid + 10.0
  # Shortest path: (3, 3) -> (25, 4) is 21 straight + 1 diagonal step, the
  # inner corner forbids cutting across, then (25, 4) -> (27, 28) is
  # 22 straight + 2 diagonal steps.
  np.testing.assert_allclose(dist[target], 43.0 + 3.0 * np.sqrt(2.0))


def test_no_corner_cutting_and_unreachable():
  mask = np.zeros((5, 5), np.float32)
  mask[1, 1] = mask[2, 2] = 1.0            # only diagonally adjacent
  dist = geodesic.geodesic_distance(mask, np.array([[1, 1]]))
  assert dist[1, 1] == 0.0
  assert np.isinf(dist[2, 2])


def test_multiple_sources_take_the_nearest():
  mask = np.ones((1, 11), np.float32)
  dist = geodesic.geodesic_distance(mask, np.array([[0, 0], [10, 0]]))
  np.testing.assert_allclose(dist[0], [0, 1, 2, 3, 4, 5, 4, 3, 2, 1, 0])


def test_weight_map_matches_formula():
  mask = np.zeros((12, 20), np.float32)
  mask[4:8, 3:17] = 1.0
  a, b, c, d = 2.0, 1.0, 3.0, 20.0
  weights = geodesic.geodesic_weight_map(mask, params=(a, b, c, d, 0.0))
  assert weights.shape == mask.shape and weights.dtype == np.float32
  # Centroid (x, y) = (9.5 -> 9, 5.5 -> 5).
  np.testing.assert_array_equal(geodesic.mask_centroid(mask), [9, 5])
  geo = geodesic.geodesic_distance(mask, np.array([[9, 5]]))
  inside = mask > 0
  gmax = geo[inside].max()
  # The farthest pixel is (row 7, column 16): 7 along x and 2 along y, so
  # 2 diagonal steps and 5 straight ones.
  np.testing.assert_allclose(gmax, 5.0 + 2.0 * np.sqrt(2.0))
  expected_in = np.exp(a * geo[inside] / gmax) + b + d
  np.testing.assert_allclose(weights[inside], expected_in, rtol=1e-6)
  # Background: 1 + b + c * (Euclidean distance to the mask) / max + d.
  rows, cols = np.nonzero(~inside)
  in_r, in_c = np.nonzero(inside)
  bg = np.array([np.min(np.hypot(in_r - r, in_c - cc))
                 for r, cc in zip(rows, cols)])
  expected_out = 1.0 + b + c * bg / bg.max() + d
  np.testing.assert_allclose(weights[~inside], expected_out, rtol=1e-6)
  # Centre weight 1 + b + d, farthest exp(a) + b + d.
  np.testing.assert_allclose(weights[5, 9], 1.0 + b + d)
  np.testing.assert_allclose(weights[inside].max(), np.exp(a) + b + d,
                             rtol=1e-6)


def test_weight_map_fallbacks():
  assert np.all(geodesic.geodesic_weight_map(np.zeros((6, 6))) == 1.0)
  ring = np.ones((9, 9), np.float32)
  ring[2:7, 2:7] = 0.0                   # centroid (4, 4) is a hole
  ones = geodesic.geodesic_weight_map(ring, center_outside="ones")
  assert np.all(ones == 1.0)
  snapped = geodesic.geodesic_weight_map(ring)
  assert np.all(np.isfinite(snapped)) and snapped.min() >= 22.0 - 1e-6
  # [H, W, 1] in, same shape out.
  assert geodesic.geodesic_weight_map(ring[..., None]).shape == (9, 9, 1)


def test_bad_input_raises():
  with pytest.raises(ValueError, match="mask"):
    geodesic.geodesic_distance(np.zeros((2, 3, 4)), np.array([[0, 0]]))
  with pytest.raises(ValueError, match="params"):
    geodesic.geodesic_weight_map(np.ones((4, 4)), params=(1, 2, 3))
