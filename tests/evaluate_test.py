"""The image evaluator (`xsup.evaluate`) on hand-built multi-view splits."""

import numpy as np
import pytest

from xsup import evaluate
from xsup import skeleton
from xsup.data.synthetic import cameras
from xsup.data.synthetic import poses as poses_lib
from xsup.geometry import camera
from xsup.geometry import patch

S = 64
H18 = skeleton.H36M18


def _split(num: int = 2, azimuths=(30.0, 120.0), seed: int = 0):
  """A prepared evaluation split of procedural poses and its exact
  normalised predictions `[N, V, 18, 3]`."""
  world = poses_lib.sample_poses_h36m18(np.random.default_rng(seed),
                                        num).astype(np.float64)
  rot, trans = cameras.ring_rig(np.array([0.0, 0.0, 950.0]), azimuths)
  rot, trans = rot.astype(np.float64), trans.astype(np.float64)
  views = len(azimuths)
  focal = np.broadcast_to([1145.0, 1140.0], (num, views, 2))
  center = np.broadcast_to([512.0, 515.0], (num, views, 2))
  cam = np.asarray(camera.world_to_camera(world[:, None], rot, trans),
                   np.float64)  # [N, V, 18, 3]
  pixels = np.asarray(camera.project(cam, focal, center), np.float64)
  # A 2000 mm square at the pelvis, as the Human3.6M crops.
  affine = np.stack([np.stack([
      camera.affine_transform(pixels[n, v, 0],
                              2000.0 * focal[n, v, 0] / cam[n, v, 0, 2], S)
      for v in range(views)]) for n in range(num)]).astype(np.float64)
  joints_2d = np.asarray(camera.apply_affine(pixels, affine), np.float64)
  data = {"image": np.zeros((num, views, S, S, 3), np.uint8),
          "joints_3d_camera": cam, "joints_2d_patch": joints_2d,
          "affine": affine, "focal": focal, "center": center,
          "rot": np.broadcast_to(rot, (num,) + rot.shape),
          "trans": np.broadcast_to(trans, (num,) + trans.shape)}
  rect = patch.patch_rect_mm(affine, focal, cam[..., 0, 2], S)
  exact = patch.normalise_patch_joints(
      joints_2d, cam[..., 2] - cam[..., :1, 2], S, rect)
  return data, exact


def test_swap_left_right_hand_computed():
  pairs = ((0, 1), (2, 3))
  gt = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 5.0], [10.0, 5.0]])
  pred = gt[[1, 0, 2, 3]] + 0.5  # First pair swapped, second kept.
  perm, swapped = evaluate.swap_left_right(pred, gt, pairs)
  np.testing.assert_array_equal(perm, [1, 0, 2, 3])
  np.testing.assert_array_equal(swapped, [True, False])
  fixed = np.take_along_axis(pred, perm[..., None], axis=-2)
  np.testing.assert_allclose(fixed, gt + 0.5)


def test_exact_predictions_give_zero_errors_and_hypotheses_are_ranked():
  data, exact = _split()
  deeper = exact.copy()
  deeper[..., 1:, 2] += 0.1  # 200 mm too deep, but the pelvis.
  # Hypothesis 0 wrong, hypothesis 1 exact.
  pred = np.stack([deeper, exact], axis=2)
  gt = data["joints_3d_camera"]
  rel = gt - gt[..., :1, :]
  results = evaluate.evaluate_image_predictions(
      pred, data, np.zeros((18, 3)), protocol="mpi_inf_3dhp")
  assert results["num_samples"] == 2 and results["num_views"] == 2
  assert results["best/mpjpe"] < 0.05 and results["best/p_mpjpe"] < 0.05
  assert results["confident/mpjpe"] > 50.0
  assert results["mpjpe_2d"] < 1e-3 and results["mpjpe_2d_noswap"] < 1e-3
  assert results["ambiguity_ratio"] == 0.0
  assert results["ambiguity_cross_view"] == 0.0
  # DLT of exact 2D (float32) against the world-frame truth.
  assert results["triangulated/mpjpe"] < 1.0
  # The zero pose's error is the mean distance of the joints to the pelvis.
  assert results["baseline/mpjpe"] == pytest.approx(
      np.linalg.norm(rel, axis=-1).mean(), rel=1e-9)
  # 3DHP protocol on the H36M-18 truth mapped to its 17 joints.
  assert results["pck_ground_truth"] == "joints_3d_camera"
  assert results["best/pck150"] == 1.0 and results["best/pa_pck150"] == 1.0
  assert results["confident/pck150"] < 1.0


def test_left_right_swaps_are_undone_only_when_asked():
  data, exact = _split(num=1, azimuths=(30.0, 120.0, 210.0))
  flipped = exact.copy()
  flipped[:, 1] = exact[:, 1][..., H18.flip_permutation, :]  # view 1 only
  pred = flipped[:, :, None]
  baseline = np.zeros((18, 3))
  on = evaluate.evaluate_image_predictions(pred, data, baseline)
  off = evaluate.evaluate_image_predictions(pred, data, baseline, swap=False)
  assert on["confident/mpjpe"] < 0.05 and on["mpjpe_2d"] < 1e-3
  assert on["noswap/confident/mpjpe"] == pytest.approx(
      off["confident/mpjpe"])
  assert off["confident/mpjpe"] > 10.0 and "noswap/confident/mpjpe" not in off
  assert on["mpjpe_2d_noswap"] == pytest.approx(off["mpjpe_2d"])
  assert off["mpjpe_2d"] > 1.0
  # Every pair swapped in one view of three: 1/3 of the pairs, and each
  # pair's views disagree once (min(1, 3 - 1) / 3).
  assert on["ambiguity_ratio"] == pytest.approx(1 / 3)
  assert on["ambiguity_cross_view"] == pytest.approx(1 / 3)
  # Triangulation uses the swapped-back 2D predictions.
  assert on["triangulated/mpjpe"] < 1.0 < off["triangulated/mpjpe"]


def test_single_view_with_actions_and_bad_input():
  data, exact = _split(num=4, azimuths=(45.0,))
  data["action"] = np.array([b"walk", b"sit", b"walk", b"sit"])
  results = evaluate.evaluate_image_predictions(
      exact[:, :, None], data, np.zeros((18, 3)))
  assert "ambiguity_cross_view" not in results
  assert "triangulated/mpjpe" not in results
  assert set(results["per_action"]) == {"walk", "sit", "average"}
  assert results["per_action"]["walk"]["confident/mpjpe"] < 0.05
  with pytest.raises(ValueError, match="protocol"):
    evaluate.evaluate_image_predictions(exact[:, :, None], data,
                                        np.zeros((18, 3)), protocol="x")
  with pytest.raises(ValueError, match="focal"):
    evaluate.evaluate_image_predictions(
        exact[:, :, None], {k: v for k, v in data.items() if k != "focal"},
        np.zeros((18, 3)))
  with pytest.raises(ValueError, match="pred must be"):
    evaluate.evaluate_image_predictions(exact, data, np.zeros((18, 3)))
