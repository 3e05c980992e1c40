"""Inference entry point: exports -> Predictor / CLI (tiny random models)."""

import json
import os

import matplotlib
matplotlib.use("Agg")
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

import model_fixtures
from xsup import export
from xsup import predict
from xsup import skeleton
from xsup.geometry import camera as camera_lib
from xsup.geometry import patch as patch_lib
from xsup.models import detector as detector_lib
from xsup.models import teacher as teacher_lib
from xsup.train import lifting as lifting_train

SIZE = 64
DETECTOR_KWARGS = dict(resnet_depth=18, num_joints=18, depth_dim=16,
                       num_hypo=3, neighbor_size=5, head_filters=16,
                       head_layers=3)
TEACHER_KWARGS = dict(num_joints=17, width=32, num_layers=1, dict_size=4,
                      init_std=0.1)
METADATA = {"input": "image", "image_size": SIZE, "rect_3d_mm": 2200.0,
            "skeleton": "h36m18", "remove_background": True}


def _smooth_images(num, seed, size=SIZE):
  """uint8 `[num, size, size, 3]` smooth colour blobs."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:size, 0:size] / size
  out = []
  for _ in range(num):
    img = np.zeros((size, size, 3))
    for _ in range(4):
      cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(
          0.1, 0.3)
      img += rng.uniform(0, 1, 3) * np.exp(
          -((xx - cx) ** 2 + (yy - cy) ** 2) / r ** 2)[..., None]
    out.append(np.clip(img / img.max() * 255, 0, 255).astype(np.uint8))
  return np.stack(out)


def _write_pngs(folder, images, prefix="img"):
  os.makedirs(folder, exist_ok=True)
  paths = []
  for i, img in enumerate(images):
    path = os.path.join(folder, f"{prefix}{i}.png")
    Image.fromarray(img).save(path)
    paths.append(path)
  return paths


@pytest.fixture(scope="module")
def detector_export(tmp_path_factory):
  """(export dir, module, variables) of a tiny random detector."""
  model = detector_lib.IntegralDetector(**DETECTOR_KWARGS)
  abstract = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)), train=False))
  variables = model_fixtures.numpy_variables(abstract, 0, random_stats=True)
  directory = export.save(str(tmp_path_factory.mktemp("det") / "export"),
                          "detector", DETECTOR_KWARGS, variables,
                          metadata=METADATA)
  return directory, model, variables


@pytest.fixture(scope="module")
def predictor(detector_export):
  return predict.Predictor(detector_export[0], batch_size=2)


@pytest.fixture(scope="module")
def teacher_export(tmp_path_factory):
  model = teacher_lib.Teacher(**TEACHER_KWARGS)
  abstract = jax.eval_shape(lambda: model.init(
      jax.random.key(1), jnp.zeros((2, 17, 2)), train=False))
  variables = model_fixtures.numpy_variables(abstract, 1, random_stats=True)
  directory = export.save(
      str(tmp_path_factory.mktemp("teacher") / "export"), "teacher",
      TEACHER_KWARGS, variables,
      metadata={"input": "keypoints_2d", "skeleton": "h36m17",
                "norm_scale": 3.0})
  return directory, model, variables


def _pixel_keypoints(num, seed):
  """`[num, 17, 2]` pixel keypoints of projected random poses."""
  rng = np.random.default_rng(seed)
  pose = rng.normal(size=(num, 17, 3)) * 300.0
  pose[..., 2] += 5000.0
  return np.asarray(camera_lib.project(pose, np.array([1100.0, 1100.0]),
                                       np.array([500.0, 500.0])), np.float32)


# ---------------------------------------------------------------------------


def test_metadata_round_trip_and_old_exports(tmp_path, detector_export):
  directory, _, variables = detector_export
  assert export.load_metadata(directory) == METADATA
  old = export.save(str(tmp_path / "old"), "detector", DETECTOR_KWARGS,
                    variables)
  assert export.load_metadata(old) == {}
  assert "inference" not in json.load(open(os.path.join(old, "model.json")))
  with pytest.raises(TypeError):
    export.save(str(tmp_path / "bad"), "detector", DETECTOR_KWARGS,
                variables, metadata={"x": object()})
  assert not os.path.exists(str(tmp_path / "bad"))


def test_images_from_files_equal_arrays_equal_direct_apply(
    tmp_path, detector_export, predictor):
  _, model, variables = detector_export
  images = _smooth_images(5, 0)
  paths = _write_pngs(str(tmp_path), images)
  from_arrays = predictor.predict_images(images)
  from_files = predictor.predict_images(paths)
  direct = model.apply(variables, jnp.asarray(images, jnp.float32) / 255.0,
                       train=False)["joints"]
  assert from_arrays["joints_patch"].shape == (5, 3, 18, 3)
  assert from_arrays["joints_pixels"].shape == (5, 3, 18, 2)
  assert from_arrays["joints_camera"].shape == (5, 3, 18, 3)
  assert from_arrays["scores"].shape == (5, 3, 18)
  # Other batch shapes may reorder float sums: 1e-4 of a half patch width.
  np.testing.assert_allclose(from_arrays["joints_patch"], direct, atol=1e-4)
  for key in ("joints_patch", "joints_pixels", "joints_camera", "scores"):
    np.testing.assert_array_equal(from_files[key], from_arrays[key])
  np.testing.assert_allclose(
      from_arrays["joints_pixels"],
      (from_arrays["joints_patch"][..., :2] + 1) / 2 * SIZE, atol=1e-5)
  np.testing.assert_array_equal(from_arrays["joints_image"],
                                from_arrays["joints_pixels"])
  # x, y are shared by the hypotheses; the camera pose is root-relative.
  np.testing.assert_array_equal(from_arrays["joints_pixels"][:, 1],
                                from_arrays["joints_pixels"][:, 0])
  np.testing.assert_allclose(from_arrays["joints_camera"][:, :, 0], 0.0,
                             atol=1e-6)
  scores = from_arrays["scores"]
  assert np.all(scores > 0) and np.all(scores <= 1 + 1e-5)


def test_hypothesis_scores_are_window_masses():
  p = jnp.asarray(np.array([[[0.1, 0.2, 0.3, 0.15, 0.05, 0.2]]]))
  idx = jnp.asarray(np.array([[[2]], [[0]]]).reshape(1, 2, 1))
  scores = predict.hypothesis_scores(p, idx, neighbor_size=3)
  np.testing.assert_allclose(scores, [[[0.2 + 0.3 + 0.15], [0.1 + 0.2]]],
                             atol=1e-6)


def test_resized_and_non_square_files(tmp_path, predictor):
  images = _smooth_images(2, 1)
  big = np.repeat(np.repeat(images[0], 2, axis=0), 2, axis=1)  # 128x128
  tall = np.zeros((SIZE + 32, SIZE, 3), np.uint8)  # 64 wide, 96 high
  tall[16:16 + SIZE] = images[1]
  big_path, tall_path = str(tmp_path / "big.png"), str(tmp_path / "tall.png")
  Image.fromarray(big).save(big_path)
  Image.fromarray(tall).save(tall_path)

  patch, affine, size = predict.load_image(big_path, SIZE)
  assert patch.shape == (SIZE, SIZE, 3) and size == (128, 128)
  assert np.abs(patch.astype(int) - images[0]).max() <= 8
  np.testing.assert_allclose(affine, [[0.5, 0, 0], [0, 0.5, 0]])
  patch, affine, size = predict.load_image(tall_path, SIZE)
  assert size == (SIZE, SIZE + 32)
  # Padded to 96x96 (16 px on the left and right), then scaled by 2/3.
  np.testing.assert_allclose(affine, [[2 / 3, 0, 16 * 2 / 3],
                                      [0, 2 / 3, 0]])

  out = predictor.predict_images([big_path, tall_path])
  assert out["joints_camera"].shape == (2, 3, 18, 3)
  ref = predictor.predict_images(images[:1])
  np.testing.assert_allclose(out["joints_patch"][0], ref["joints_patch"][0],
                             atol=0.05)
  # joints_image are in the files' pixels: patch pixels through 1 / affine.
  np.testing.assert_allclose(out["joints_image"][0],
                             out["joints_pixels"][0] * 2, rtol=1e-5)
  np.testing.assert_allclose(out["joints_image"][1],
                             out["joints_pixels"][1] * 1.5 - [16, 0],
                             rtol=1e-5, atol=1e-3)


def test_patch_to_camera_inverts_the_documented_projection():
  # A pose in front of the patch camera: pelvis at depth Z0 (off-centre),
  # projected with focal f and principal point (S/2, S/2), normalised as the
  # detector's targets; converting back gives the root-relative pose.
  rng = np.random.default_rng(0)
  pose = rng.normal(size=(18, 3)) * np.array([250.0, 400.0, 200.0])
  pose -= pose[0]
  focal, rect = 180.0, 2000.0
  cam = predict.patch_camera(SIZE, focal_px=focal, rect_3d_mm=rect)
  z0 = rect * focal / SIZE
  assert cam.pelvis_depth_mm == pytest.approx(z0)
  world = pose + np.array([60.0, -90.0, z0])
  u = focal * world[:, 0] / world[:, 2] + SIZE / 2
  v = focal * world[:, 1] / world[:, 2] + SIZE / 2
  normalised = np.stack([u / SIZE * 2 - 1, v / SIZE * 2 - 1,
                         (world[:, 2] - z0) / rect], -1)
  back = predict.patch_to_root_relative_mm(normalised[None, None], cam)
  np.testing.assert_allclose(back[0, 0], pose, atol=1e-3)

  # The same camera from the pelvis depth, and the weak-perspective limit:
  # a very long focal gives the training losses' patch-units-to-mm scale.
  same = predict.patch_camera(SIZE, focal_px=focal, pelvis_depth_mm=z0)
  assert same.rect_3d_mm == pytest.approx(rect, rel=1e-6)
  # (Pelvis 200 m away: relative depths of ~0.5 m change x, y by ~0.25 %.)
  far = predict.patch_camera(SIZE, focal_px=100 * SIZE, rect_3d_mm=rect)
  weak = predict.patch_to_root_relative_mm(normalised[None], far)[0]
  expected = (normalised - normalised[:1]) * patch_lib.patch_units_to_mm(
      rect, SIZE)
  np.testing.assert_allclose(weak[:, 2], expected[:, 2], atol=0.05)
  np.testing.assert_allclose(weak[:, :2], expected[:, :2], rtol=5e-3,
                             atol=0.05)
  assert np.abs(weak - expected).max() > 0.1  # Not exactly weak perspective.


def test_camera_defaults_and_over_determination(predictor):
  cam = predictor.camera()
  assert cam.focal_px == pytest.approx(2.5 * SIZE)
  assert cam.rect_3d_mm == METADATA["rect_3d_mm"]
  assert cam.pelvis_depth_mm == pytest.approx(2200.0 * 2.5)
  assert cam.center_px == (SIZE / 2, SIZE / 2)
  assert predict.patch_camera(SIZE, rect_3d_mm=1000.0,
                              pelvis_depth_mm=4000.0).focal_px == 256.0
  with pytest.raises(ValueError, match="at most two"):
    predict.patch_camera(SIZE, 100.0, 2000.0, 5000.0)
  with pytest.raises(ValueError, match="positive"):
    predict.patch_camera(SIZE, focal_px=-1.0)


def test_focal_changes_camera_pose_consistently(predictor):
  images = _smooth_images(1, 3)
  a = predictor.predict_images(images, focal_px=100.0)
  b = predictor.predict_images(images, focal_px=100.0, rect_3d_mm=1100.0)
  np.testing.assert_array_equal(a["joints_patch"], b["joints_patch"])
  # Half the patch width at the same focal: half the pelvis depth, so the
  # whole pose scales by one half.
  np.testing.assert_allclose(b["joints_camera"], a["joints_camera"] / 2,
                             rtol=1e-5, atol=1e-3)


def test_cli_writes_json_npz_and_one_overlay_per_image(tmp_path, predictor):
  images = _smooth_images(3, 4)
  folder = str(tmp_path / "in")
  paths = _write_pngs(folder, images[:2])
  extra = _write_pngs(str(tmp_path / "more"), images[2:], prefix="img")
  out_dir = str(tmp_path / "out")
  doc = predict.main(["--model_dir", predictor.model_dir, "--inputs", folder,
                      extra[0], "--output_dir", out_dir, "--batch_size",
                      "2"])
  with open(os.path.join(out_dir, "predictions.json")) as f:
    written = json.load(f)
  assert written == json.loads(json.dumps(doc))
  assert written["skeleton"] == "h36m18"
  assert len(written["joint_names"]) == 18
  assert written["camera"]["image_size"] == SIZE
  assert "hypothesis_order" in written
  preds = written["predictions"]
  assert [p["name"] for p in preds] == ["img0.png", "img1.png", "img0.png"]
  for p in preds:
    assert [h["rank"] for h in p["hypotheses"]] == [0, 1, 2]
    h = p["hypotheses"][0]
    assert np.shape(h["joints_pixels"]) == (18, 2)
    assert np.shape(h["joints_image"]) == (18, 2)
    assert np.shape(h["joints_camera_mm"]) == (18, 3)
    assert np.shape(h["scores"]) == (18,)
  pngs = sorted(f for f in os.listdir(out_dir) if f.endswith(".png"))
  assert pngs == ["img0_1_overlay.png", "img0_overlay.png",
                  "img1_overlay.png"]
  with Image.open(os.path.join(out_dir, "img0_overlay.png")) as img:
    assert img.size[0] > img.size[1] > 100  # Overlay + 3D panel.
  ref = predictor.predict_images(paths + extra)
  npz = np.load(os.path.join(out_dir, "predictions.npz"))
  np.testing.assert_allclose(npz["joints_camera"], ref["joints_camera"],
                             atol=1e-3)
  np.testing.assert_allclose(preds[1]["hypotheses"][2]["joints_camera_mm"],
                             ref["joints_camera"][1, 2], atol=0.06)


def test_cli_errors_name_the_culprit(tmp_path, detector_export,
                                     teacher_export):
  directory = detector_export[0]
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(FileNotFoundError, match="empty"):
    predict.main(["--model_dir", directory, "--inputs", str(empty),
                  "--output_dir", str(tmp_path / "o")])
  bad = tmp_path / "corrupt.png"
  bad.write_bytes(b"this is not a png")
  with pytest.raises(ValueError, match="corrupt.png"):
    predict.main(["--model_dir", directory, "--inputs", str(bad),
                  "--output_dir", str(tmp_path / "o")])
  with pytest.raises(FileNotFoundError, match="missing.png"):
    predict.main(["--model_dir", directory, "--inputs",
                  str(tmp_path / "missing.png"), "--output_dir",
                  str(tmp_path / "o")])
  with pytest.raises(FileNotFoundError, match="nowhere"):
    predict.main(["--model_dir", str(tmp_path / "nowhere"), "--inputs",
                  str(bad), "--output_dir", str(tmp_path / "o")])
  with pytest.raises(ValueError, match="not images"):
    predict.main(["--model_dir", teacher_export[0], "--inputs", str(bad),
                  "--output_dir", str(tmp_path / "o")])


def test_export_without_metadata_needs_an_image_size(tmp_path,
                                                     detector_export):
  _, _, variables = detector_export
  old = export.save(str(tmp_path / "old"), "detector", DETECTOR_KWARGS,
                    variables)
  path = _write_pngs(str(tmp_path / "img"), _smooth_images(1, 5))
  with pytest.raises(ValueError, match="image size"):
    predict.Predictor(old).predict_images(path)
  with pytest.raises(ValueError, match="trained on 64x64"):
    predict.Predictor(detector_export[0], image_size=32)
  predictor = predict.Predictor(old, image_size=SIZE)
  out = predictor.predict_images(path)
  assert out["joints_camera"].shape == (1, 3, 18, 3)
  assert out["camera"].rect_3d_mm == predict.DEFAULT_RECT_3D_MM


def test_teacher_keypoints_equal_direct_apply(tmp_path, teacher_export):
  directory, model, variables = teacher_export
  kp = _pixel_keypoints(5, 0)
  predictor = predict.Predictor(directory, batch_size=2)
  out = predictor.predict_keypoints(kp, focal_px=1100.0)
  norm, scale = camera_lib.normalize_2d_lifting(kp, np.array([1100.0,
                                                              1100.0]))
  direct = lifting_train.predict_3d("teacher", model, variables,
                                    jnp.asarray(norm))
  assert out["pose_3d"].shape == (5, 17, 3)
  assert out["norm_scale"] == pytest.approx(scale)
  np.testing.assert_allclose(out["keypoints_normalised"], norm, atol=1e-7)
  np.testing.assert_allclose(out["pose_3d"], direct, atol=1e-5)
  np.testing.assert_allclose(
      predictor.predict_keypoints(norm, normalised=True)["pose_3d"],
      out["pose_3d"], atol=1e-6)
  train = predictor.predict_keypoints(kp, focal_px=[1100.0, 1100.0],
                                      norm_scale="train")
  assert train["norm_scale"] == 3.0
  np.testing.assert_allclose(
      train["keypoints_normalised"],
      (kp - kp[:, :1]) / 1100.0 * 3.0, rtol=1e-5, atol=1e-7)

  with pytest.raises(ValueError, match=r"\[N, 17, 2\]"):
    predictor.predict_keypoints(kp[:, :16], focal_px=1100.0)
  with pytest.raises(ValueError, match="focal_px"):
    predictor.predict_keypoints(kp)
  with pytest.raises(ValueError, match="not the image detector"):
    predictor.predict_images(np.zeros((1, SIZE, SIZE, 3), np.uint8))

  npy = str(tmp_path / "kp.npy")
  np.save(npy, kp)
  out_dir = str(tmp_path / "out")
  doc = predict.main(["--model_dir", directory, "--inputs", npy,
                      "--output_dir", out_dir, "--focal_px", "1100"])
  np.testing.assert_allclose(np.load(os.path.join(out_dir,
                                                  "predictions.npy")),
                             out["pose_3d"], atol=1e-6)
  with open(os.path.join(out_dir, "predictions.json")) as f:
    written = json.load(f)
  assert written["skeleton"] == "h36m17" == doc["skeleton"]
  assert np.shape(written["pose_3d"]) == (5, 17, 3)
  np.save(npy, kp[:, :, :1])
  with pytest.raises(ValueError, match="got shape"):
    predict.main(["--model_dir", directory, "--inputs", npy,
                  "--output_dir", out_dir, "--focal_px", "1100"])


def test_viz_prediction_figure_draws_all_hypotheses():
  rng = np.random.default_rng(0)
  hyps = rng.normal(size=(3, 18, 3)) * 100
  fig = predict.viz.prediction_figure(
      np.zeros((SIZE, SIZE, 3), np.uint8), rng.uniform(0, SIZE, (18, 2)),
      hyps, skeleton.H36M18, title="x")
  ax2d, ax3d = fig.axes
  assert len(ax2d.lines) == len(skeleton.H36M18.bones)
  assert len(ax3d.lines) == 3 * len(skeleton.H36M18.bones)
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig2, ax = plt.subplots()
  spread = predict.viz.plot_hypothesis_spread(ax, hyps[None])
  depth = hyps[..., 2]
  np.testing.assert_allclose(spread[0], np.delete(
      depth.max(0) - depth.min(0), 0))
  plt.close(fig2)
