"""Joint layouts and metrics against hand-computed cases."""

import numpy as np
import pytest

from xsup import metrics
from xsup import skeleton


def test_h36m17_parents_and_flip_pairs_match_spec():
  assert skeleton.H36M17.parents == (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11,
                                     12, 8, 14, 15)
  assert set(skeleton.H36M18.flip_pairs) == {(1, 4), (2, 5), (3, 6), (14, 11),
                                             (15, 12), (16, 13)}
  assert skeleton.H36M18.parents[17] == 7
  perm = skeleton.H36M17.flip_permutation
  np.testing.assert_array_equal(perm[perm], np.arange(17))


def test_h36m18_thorax_is_mean_of_shoulders():
  x = np.random.default_rng(0).normal(size=(3, 17, 3)).astype(np.float32)
  y = skeleton.convert(x, "h36m17", "h36m18")
  np.testing.assert_allclose(y[:, :17], x)
  np.testing.assert_allclose(y[:, 17], (x[:, 11] + x[:, 14]) / 2, rtol=1e-6)


def test_3dhp_to_h36m18_selection_matches_spec():
  x = np.arange(28, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
  y = skeleton.convert(x, "mpi3dhp28", "h36m18")
  np.testing.assert_array_equal(
      y[:, 0], [4, 23, 24, 25, 18, 19, 20, 2, 5, 6, 7, 9, 10, 11, 14, 15, 16,
                1])


def test_convert_rejects_wrong_joint_count_and_unknown_layouts():
  with pytest.raises(ValueError, match="expected 17 joints"):
    skeleton.convert(np.zeros((2, 16, 3)), "h36m17", "h36m18")
  with pytest.raises(ValueError, match="Unknown skeleton"):
    skeleton.get("smplx")
  with pytest.raises(ValueError, match="No joint conversion"):
    skeleton.conversion_matrix("h36m18", "coco17")


def test_every_layout_is_a_tree_with_symmetric_sides():
  for skel in skeleton.SKELETONS.values():
    assert skel.parents.count(-1) == 1
    assert len(skel.left_joints) == len(skel.right_joints)
    adj = skel.adjacency()
    np.testing.assert_array_equal(adj, adj.T)


def test_flip_left_right_mirrors_and_swaps():
  x = np.random.default_rng(1).normal(size=(17, 3))
  y = skeleton.flip_left_right(x, skeleton.H36M17, axis=0)
  np.testing.assert_allclose(y[1], x[4] * [-1, 1, 1])
  np.testing.assert_allclose(skeleton.flip_left_right(y, skeleton.H36M17), x)


def _pose(seed=0, n=4):
  return np.random.default_rng(seed).normal(size=(n, 17, 3)) * 200


def test_mpjpe_hand_case():
  pred = np.zeros((1, 2, 3))
  target = np.array([[[0.0, 0, 0], [3.0, 4.0, 0.0]]])
  assert metrics.mpjpe(pred, target)[0] == pytest.approx(2.5)
  # Root alignment removes a global shift.
  assert metrics.mpjpe(_pose() + 50.0, _pose()).max() == pytest.approx(0.0,
                                                                       abs=1e-9)


def test_n_mpjpe_removes_scale_and_p_mpjpe_removes_similarity():
  target = _pose()
  assert metrics.n_mpjpe(2.0 * target, target).max() < 1e-3
  theta = 0.9
  rot = np.array([[np.cos(theta), 0, np.sin(theta)], [0, 1, 0],
                  [-np.sin(theta), 0, np.cos(theta)]])
  pred = 0.5 * target @ rot.T + 7.0
  assert metrics.p_mpjpe(pred, target).max() < 1e-3  # mm, float32 SVD
  assert metrics.mpjpe(pred, target).min() > 10.0


def test_flip_tolerant_accepts_depth_mirror():
  target = _pose()
  mirrored = metrics.flip_depth(target)
  assert metrics.mpjpe(mirrored, target).min() > 1.0
  assert metrics.flip_tolerant(metrics.mpjpe, mirrored, target).max() < 1e-9


def test_calibrated_mpjpe_and_summary_per_action():
  target = _pose(n=6)
  errors = metrics.pose_errors(3.0 * target, target, calibrate=True)
  assert errors["mpjpe"].max() < 1e-3  # mm
  plain = metrics.pose_errors(3.0 * target, target)
  assert plain["mpjpe"].min() > 1.0
  summary = metrics.summarize(plain, ["Walking"] * 2 + ["Eating"] * 4)
  assert summary["num_samples"] == 6
  table = summary["per_action"]
  np.testing.assert_allclose(table["Walking"]["mpjpe"],
                             plain["mpjpe"][:2].mean())
  np.testing.assert_allclose(
      table["average"]["mpjpe"],
      (plain["mpjpe"][:2].mean() + plain["mpjpe"][2:].mean()) / 2)


def test_pck_and_auc_hand_case():
  target = np.zeros((1, 4, 3))
  pred = np.array([[[0.0, 0, 0], [100.0, 0, 0], [149.0, 0, 0],
                    [200.0, 0, 0]]])
  assert metrics.pck(pred, target, 150.0) == pytest.approx(0.75)
  # AUC over 0..150 step 5 (31 thresholds): joint errors 0, 100, 149, 200
  # are inside for 31, 11, 1 and 0 thresholds.
  assert metrics.auc(pred, target) == pytest.approx((31 + 11 + 1) / (4 * 31))


def test_metric_shape_errors_are_clear():
  with pytest.raises(ValueError, match=r"\[N, J, C\]"):
    metrics.mpjpe(np.zeros((2, 17, 3)), np.zeros((2, 16, 3)))
