"""Tests of the real-image readers and TFDS builders on tiny fixtures.

Each fixture is written in the exact on-disk layout of its dataset, with
hand-placed cameras and joints; expected patch coordinates are computed here
from the pinhole model and the box definition, independently of the
builders.
"""

import json
import os

import h5py
import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds
from PIL import Image

from xsup import skeleton
from xsup.data.builders import h36m_images
from xsup.data.builders import mpi_inf_3dhp_images
from xsup.data.builders import mpii
from xsup.data.builders import patches
from xsup.data.builders import surreal_pseudo
from xsup.data.builders import tiktok
from xsup.data.formats import h36m_meta
from xsup.data.formats import mpi_inf_3dhp
from xsup.data.formats import mpii_json
from xsup.data.formats import surreal_pseudo as surreal_format
from xsup.data.formats import tiktok as tiktok_format
from xsup.geometry import camera

S = 64  # patch side used by all tests
RNG = np.random.default_rng(0)


# ----------------------------------------------------------------------------
# Fixture helpers.


def _save(path, array, **kwargs):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(np.asarray(array, np.uint8)).save(path, **kwargs)


def _blob_image(h, w, uv, sigma=1.5):
  """[h, w, 3] grey image with a bright Gaussian blob centred at pixel uv."""
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
  blob = np.exp(-((xx - uv[0])**2 + (yy - uv[1])**2) / (2 * sigma**2))
  img = 20.0 + 220.0 * blob
  return np.repeat(img[..., None], 3, axis=-1).round().astype(np.uint8)


def _disc_mask(h, w, uv, radius):
  yy, xx = np.mgrid[0:h, 0:w]
  return (((xx - uv[0])**2 + (yy - uv[1])**2) <= radius**2).astype(
      np.uint8) * 255


def _blob_centroid(patch):
  """Intensity-weighted centroid (x, y) of the bright blob of a patch."""
  g = patch[..., 0].astype(np.float64) - 20.0
  g[g < 40.0] = 0.0
  yy, xx = np.mgrid[0:g.shape[0], 0:g.shape[1]]
  return np.array([np.sum(g * xx), np.sum(g * yy)]) / np.sum(g)


def _pinhole(points, focal, center):
  return points[..., :2] / points[..., 2:3] * focal + center


def _expected_affine(pelvis_cam, focal, center, out=S, rect=2000.0):
  """Box of a 2000 mm square at the pelvis: pelvis -> patch centre."""
  side = focal[0] * rect / pelvis_cam[2]
  scale = out / side
  c = _pinhole(pelvis_cam, focal, center)
  return np.array([[scale, 0, out / 2 - scale * c[0]],
                   [0, scale, out / 2 - scale * c[1]]])


def _apply(affine, uv):
  return uv @ affine[:, :2].T + affine[:, 2]


def _rotation(rng, max_angle=0.3):
  axis = rng.normal(size=3)
  axis /= np.linalg.norm(axis)
  a = rng.uniform(-max_angle, max_angle)
  k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]],
                [-axis[1], axis[0], 0]])
  return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def _prepare(builder_cls, config, manual_dir, data_dir):
  builder = builder_cls(config=config, data_dir=os.fspath(data_dir))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=os.fspath(manual_dir)))
  return builder


def _examples(builder, split):
  ds = builder.as_dataset(split=split, shuffle_files=False)
  return list(tfds.as_numpy(ds))


# ----------------------------------------------------------------------------
# Human3.6M.

_H36M_IDS = np.array([1, 2, 3, 4, 7, 8, 9, 13, 14, 15, 16, 18, 19, 20, 26,
                      27, 28])
_H36M_FOCAL = np.array([150.0, 152.0])
_H36M_CENTER = np.array([47.0, 49.0])
_H36M_PELVIS_CAM = np.array([100.0, -50.0, 4500.0])


def _write_h36m(root, subject, num_frames=3):
  """One action/subaction, 4 cameras; returns {camera: (R, T, joints32)}."""
  rng = np.random.default_rng(subject)
  pelvis = np.array([300.0, -200.0, 900.0])
  poses = pelvis + rng.uniform(-500, 500, size=(num_frames, 32, 3))
  poses[:, 0] = pelvis + rng.uniform(-30, 30, size=(num_frames, 3))
  truth = {}
  for cam in h36m_meta.CAMERAS:
    rot = _rotation(rng)
    position = pelvis - rot.T @ _H36M_PELVIS_CAM  # pelvis at that cam point
    name = h36m_meta.sequence_name(subject, 2, 1, cam)
    lines = [f"{num_frames}", "size 96 96",
             "R " + " ".join(f"{v:.12f}" for v in rot.T.ravel()),
             "T " + " ".join(f"{v:.6f}" for v in position),
             "f " + " ".join(map(str, _H36M_FOCAL)),
             "c " + " ".join(map(str, _H36M_CENTER)),
             "k 0.1 0.01 0.001", "p 0.001 0.002",
             "joints " + " ".join(map(str, _H36M_IDS))]
    for n in range(num_frames):
      lines.append(f"{n + 1} " + " ".join(f"{v:.6f}" for v in
                                          poses[n].ravel()))
    path = os.path.join(root, "hm36", "annot", name, "matlab_meta.txt")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
      f.write("\n".join(lines) + "\n")
    for n in range(num_frames):
      cam_joints = (poses[n] - position) @ rot.T
      uv = _pinhole(cam_joints, _H36M_FOCAL, _H36M_CENTER)
      head = uv[15]  # mocap joint 16 = head
      _save(os.path.join(root, "hm36", "images", name,
                         f"{name}_{n + 1:06d}.jpg"),
            _blob_image(96, 96, head), quality=95)
      _save(os.path.join(root, "sam_masks", "h36m", name,
                         f"{name}_{n + 1:06d}.png"),
            _disc_mask(96, 96, uv[0], 9))
    truth[cam] = (rot, position, poses)
  return truth


@pytest.fixture(scope="module")
def h36m_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("h36m_data")
  truth = {s: _write_h36m(root, s) for s in (1, 9)}
  return root, truth


def _h36m_config(**kwargs):
  base = dict(name="tiny64", image_size=S, train_subjects=(1,),
              test_subjects=(9,), actions=(2,), subactions=(1,),
              train_frames=2, test_frames=0)
  base.update(kwargs)
  return h36m_images.H36mImagesConfig(**base)


def test_read_matlab_meta_values(h36m_dir):
  root, truth = h36m_dir
  name = h36m_meta.sequence_name(1, 2, 1, 2)
  meta = h36m_meta.read_matlab_meta(
      os.path.join(root, "hm36", "annot", name, "matlab_meta.txt"))
  rot, position, poses = truth[1][2]
  np.testing.assert_allclose(meta.rot, rot, atol=1e-9)
  np.testing.assert_allclose(meta.trans, -rot @ position, atol=1e-4)
  np.testing.assert_allclose(meta.focal, _H36M_FOCAL)
  np.testing.assert_allclose(meta.radial, [0.1, 0.01, 0.001])
  assert (meta.image_width, meta.image_height, meta.num_frames) == (96, 96, 3)
  cam = meta.joints_camera()
  expected = (poses[:, _H36M_IDS - 1] - position) @ rot.T
  np.testing.assert_allclose(cam[:, :17], expected, atol=1e-4)
  # Thorax (18th joint) is the mean of the shoulders (h36m18 11 and 14).
  np.testing.assert_allclose(cam[:, 17], 0.5 * (expected[:, 11] +
                                                 expected[:, 14]), atol=1e-4)
  np.testing.assert_allclose(cam[:, 0], np.broadcast_to(
      _H36M_PELVIS_CAM, (3, 3)), atol=60.0)


def test_h36m_builder(h36m_dir, tmp_path):
  root, truth = h36m_dir
  builder = _prepare(h36m_images.Builder, _h36m_config(), root, tmp_path)
  train = _examples(builder, "train")
  test = _examples(builder, "test")
  assert len(train) == 2 and len(test) == 3  # 2 of 3 frames drawn; all 3.
  assert sorted(int(e["frame"]) for e in test) == [0, 1, 2]
  for examples, subject in ((train, 1), (test, 9)):
    for ex in examples:
      assert ex["image"].shape == (4, S, S, 3) and ex["image"].dtype == np.uint8
      assert ex["mask"].shape == (4, S, S, 1)
      assert ex["joints_3d_camera"].shape == (4, 18, 3)
      assert ex["joints_2d_patch"].shape == (4, 18, 2)
      assert ex["affine"].shape == (4, 2, 3)
      assert ex["subject"].decode() == f"S{subject}"
      assert ex["action"].decode() == "Directions"
      n = int(ex["frame"])
      for v, cam in enumerate(h36m_meta.CAMERAS):
        rot, position, poses = truth[subject][cam]
        cam_joints = skeleton.convert(
            (poses[n][_H36M_IDS - 1] - position) @ rot.T, "h36m17", "h36m18")
        np.testing.assert_allclose(ex["joints_3d_camera"][v], cam_joints,
                                   atol=1e-2)
        np.testing.assert_allclose(ex["rot"][v], rot, atol=1e-6)
        np.testing.assert_allclose(ex["trans"][v], -rot @ position, atol=1e-2)
        affine = _expected_affine(cam_joints[0], _H36M_FOCAL, _H36M_CENTER)
        np.testing.assert_allclose(ex["affine"][v], affine, atol=1e-3)
        expected = _apply(affine, _pinhole(cam_joints, _H36M_FOCAL,
                                           _H36M_CENTER))
        np.testing.assert_allclose(ex["joints_2d_patch"][v], expected,
                                   atol=1e-3)
        np.testing.assert_allclose(ex["joints_2d_patch"][v, 0], [S / 2] * 2,
                                   atol=1e-3)
        # The blob drawn at the head lands on the head's patch position.
        np.testing.assert_allclose(_blob_centroid(ex["image"][v]),
                                   expected[10], atol=0.35)
        # The mask disc around the pelvis is centred in the patch.
        m = ex["mask"][v, ..., 0].astype(np.float64)
        yy, xx = np.mgrid[0:S, 0:S]
        np.testing.assert_allclose(
            [np.sum(m * xx) / m.sum(), np.sum(m * yy) / m.sum()],
            expected[0], atol=0.35)


def test_h36m_missing_image_is_named(h36m_dir, tmp_path):
  root, _ = h36m_dir
  name = h36m_meta.sequence_name(9, 2, 1, 3)
  path = os.path.join(root, "hm36", "images", name, f"{name}_000002.jpg")
  moved = path + ".bak"
  os.rename(path, moved)
  try:
    with pytest.raises(FileNotFoundError, match=f"{name}_000002.jpg"):
      _prepare(h36m_images.Builder, _h36m_config(name="tiny64_missing"),
               root, tmp_path)
  finally:
    os.rename(moved, path)


def test_matlab_meta_malformed_lines(tmp_path):
  good = ["2", "size 10 10", "R 1 0 0 0 1 0 0 0 1", "T 0 0 0", "f 1 1",
          "c 0 0", "k 0 0 0", "p 0 0", "joints " + " ".join(map(str,
                                                             _H36M_IDS)),
          "1 " + " ".join(["1.0"] * 96), "2 " + " ".join(["2.0"] * 96)]
  path = tmp_path / "matlab_meta.txt"
  path.write_text("\n".join(good))
  assert h36m_meta.read_matlab_meta(str(path)).num_frames == 2
  bad = list(good)
  bad[10] = "2 " + " ".join(["2.0"] * 95)
  path.write_text("\n".join(bad))
  with pytest.raises(ValueError, match=r"matlab_meta.txt:11: .*96"):
    h36m_meta.read_matlab_meta(str(path))
  bad = list(good)
  bad[4] = "f 1 x"
  path.write_text("\n".join(bad))
  with pytest.raises(ValueError, match=r"matlab_meta.txt:5: non-numeric"):
    h36m_meta.read_matlab_meta(str(path))
  path.write_text("\n".join(good[:10]))
  with pytest.raises(ValueError, match=r"matlab_meta.txt.*2 frame lines"):
    h36m_meta.read_matlab_meta(str(path))
  with pytest.raises(FileNotFoundError, match="nowhere.txt"):
    h36m_meta.read_matlab_meta(str(tmp_path / "nowhere.txt"))


def test_select_frames_is_deterministic():
  a = h36m_meta.select_frames(100, 5, (0, 1, 2, 1))
  assert a == h36m_meta.select_frames(100, 5, (0, 1, 2, 1))
  assert a != h36m_meta.select_frames(100, 5, (0, 1, 3, 1))
  assert a == sorted(set(a)) and len(a) == 5
  assert h36m_meta.select_frames(3, 5, (0,)) == [0, 1, 2]


# ----------------------------------------------------------------------------
# MPI-INF-3DHP.

_MPI_IMAGE = 96
_MPI_PELVIS_CAM = np.array([-80.0, 60.0, 4200.0])


def _mpi_camera(view):
  focal = np.array([140.0 + view, 141.0 + view])
  center = np.array([48.0 - view * 0.5, 47.0 + view * 0.25])
  return focal, center


def _write_calibration(path, rng):
  lines = ["Skeletool Camera Calibration File V1.0"]
  truth = {}
  for cam in range(mpi_inf_3dhp.NUM_CAMERAS):
    focal, center = _mpi_camera(cam)
    rot = _rotation(rng)
    trans = rng.uniform(-500, 500, 3)
    k = [focal[0], 0, center[0], 0, 0, focal[1], center[1], 0, 0, 0, 1, 0,
         0, 0, 0, 1]
    e = np.eye(4)
    e[:3, :3], e[:3, 3] = rot, trans
    lines += [f"name          {cam}", "  sensor      10 10",
              f"  size        {_MPI_IMAGE} {_MPI_IMAGE}", "  animated    0",
              "  intrinsic   " + " ".join(f"{v:.6f}" for v in k),
              "  extrinsic   " + " ".join(f"{v:.12f}" for v in e.ravel()),
              "  radial      0"]
    truth[cam] = (focal, center, rot, trans)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return truth


def _write_mpi_sequence(root, subject, seq, num_frames, overexposed=()):
  rng = np.random.default_rng(100 + subject)
  base = os.path.join(root, "mpi_inf_3dhp", f"S{subject}", f"Seq{seq}")
  cams = _write_calibration(os.path.join(base, "camera.calibration"), rng)
  annot2 = np.empty((mpi_inf_3dhp.NUM_CAMERAS, 1), object)
  annot3 = np.empty((mpi_inf_3dhp.NUM_CAMERAS, 1), object)
  univ = np.empty((mpi_inf_3dhp.NUM_CAMERAS, 1), object)
  for cam in range(mpi_inf_3dhp.NUM_CAMERAS):
    j3 = _MPI_PELVIS_CAM + rng.uniform(-450, 450, (num_frames, 28, 3))
    j3[:, 4] = _MPI_PELVIS_CAM  # pelvis
    focal, center = cams[cam][:2]
    annot3[cam, 0] = j3.reshape(num_frames, -1)
    univ[cam, 0] = (0.9 * j3).reshape(num_frames, -1)
    annot2[cam, 0] = _pinhole(j3, focal, center).reshape(num_frames, -1)
  scipy.io.savemat(os.path.join(base, "annot.mat"), {
      "annot2": annot2, "annot3": annot3, "univ_annot3": univ,
      "frames": np.arange(num_frames)[:, None]})
  for v in mpi_inf_3dhp.TRAIN_VIEWS:
    focal, center = cams[v][:2]
    for n in range(num_frames):
      uv = _pinhole(annot3[v, 0].reshape(num_frames, 28, 3)[n], focal, center)
      frame = f"video_{v}/frame_{n + 1:06d}.jpg"
      _save(os.path.join(base, "images", frame),
            _blob_image(_MPI_IMAGE, _MPI_IMAGE, uv[7]), quality=95)
      fg = np.full((_MPI_IMAGE, _MPI_IMAGE, 3), 0, np.uint8)
      if (n, v) in overexposed:
        fg[...] = 255
      _save(os.path.join(base, "masks", frame), fg, quality=95)
      _save(os.path.join(base, "chair_masks", frame),
            np.full((_MPI_IMAGE, _MPI_IMAGE, 3), 255, np.uint8), quality=95)
      sam = np.zeros((_MPI_IMAGE, _MPI_IMAGE, 3), np.uint8)
      sam[..., 0] = _disc_mask(_MPI_IMAGE, _MPI_IMAGE, uv[4], 8)
      _save(os.path.join(root, "sam_masks", "mpi_inf_3dhp", f"S{subject}",
                         f"Seq{seq}", "masks", frame), sam, quality=95)
  return {"annot3": annot3, "univ": univ, "cams": cams}


def _write_mpi_test(root, num_frames=4):
  rng = np.random.default_rng(7)
  base = os.path.join(root, "mpi_inf_3dhp", "mpi_inf_3dhp_test_set", "TS1")
  pelvis = np.array([50.0, 100.0, 4000.0])
  annot3 = pelvis + rng.uniform(-400, 400, (num_frames, 1, 17, 3))
  annot3[:, 0, 14] = pelvis
  cam = mpi_inf_3dhp.TEST_INTRINSICS[1]
  os.makedirs(base, exist_ok=True)
  with h5py.File(os.path.join(base, "annot_data.mat"), "w") as f:
    f["annot3"] = annot3
    f["univ_annot3"] = 0.95 * annot3
    f["annot2"] = _pinhole(annot3, cam.focal, cam.center)
    f["valid_frame"] = np.array([[1], [0], [1], [1]], np.float64)
    f["activity_annotation"] = np.array([[1], [2], [3], [7]], np.float64)
  for n in range(num_frames):
    _save(os.path.join(base, "imageSequence", f"img_{n + 1:06d}.jpg"),
          np.full((48, 64, 3), 90, np.uint8))
  return annot3[:, 0]


@pytest.fixture(scope="module")
def mpi_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("mpi_data")
  truth = {1: _write_mpi_sequence(root, 1, 1, 3, overexposed={(2, 7)}),
           7: _write_mpi_sequence(root, 7, 1, 3)}
  truth["test"] = _write_mpi_test(root)
  return root, truth


def test_mpi_inf_3dhp_builder(mpi_dir, tmp_path):
  root, truth = mpi_dir
  config = mpi_inf_3dhp_images.MpiInf3dhpImagesConfig(
      name="tiny64", image_size=S, train_subjects=(1,),
      validation_subjects=(7,), sequences=(1,), test_sequences=(1,),
      train_step=1, validation_step=2)
  builder = _prepare(mpi_inf_3dhp_images.Builder, config, root, tmp_path)
  train = _examples(builder, "train")
  val = _examples(builder, "validation")
  test = _examples(builder, "test")
  # Frame 2 of S1 has an overexposed foreground mask in view 7: dropped.
  assert sorted(int(e["frame"]) for e in train) == [0, 1]
  assert sorted(int(e["frame"]) for e in val) == [0, 2]
  views = mpi_inf_3dhp.TRAIN_VIEWS
  for examples, subject in ((train, 1), (val, 7)):
    for ex in examples:
      assert ex["image"].shape == (5, S, S, 3)
      assert ex["mask"].shape == (5, S, S, 1)
      assert set(np.unique(ex["mask"])) <= {0, 255}
      assert ex["joints_3d_univ17"].shape == (5, 17, 3)
      assert ex["action"].decode() == "Seq1"
      assert ex["subject"].decode() == f"S{subject}"
      n = int(ex["frame"])
      for i, v in enumerate(views):
        focal, center, rot, trans = truth[subject]["cams"][v]
        j28 = truth[subject]["annot3"][v, 0].reshape(-1, 28, 3)[n]
        j18 = j28[[4, 23, 24, 25, 18, 19, 20, 2, 5, 6, 7, 9, 10, 11, 14, 15,
                   16, 1]]
        np.testing.assert_allclose(ex["joints_3d_camera"][i], j18, atol=1e-2)
        np.testing.assert_allclose(ex["rot"][i], rot, atol=1e-6)
        np.testing.assert_allclose(ex["trans"][i], trans, atol=1e-3)
        np.testing.assert_allclose(ex["focal"][i], focal)
        affine = _expected_affine(j18[0], focal, center)
        expected = _apply(affine, _pinhole(j18, focal, center))
        np.testing.assert_allclose(ex["joints_2d_patch"][i], expected,
                                   atol=1e-3)
        # 3DHP joint 7 (head top) carries the blob; it is h36m18 joint 10.
        np.testing.assert_allclose(_blob_centroid(ex["image"][i]),
                                   expected[10], atol=0.4)
        univ = truth[subject]["univ"][v, 0].reshape(-1, 28, 3)[n]
        np.testing.assert_allclose(
            ex["joints_3d_univ17"][i],
            univ[[7, 5, 14, 15, 16, 9, 10, 11, 23, 24, 25, 18, 19, 20, 4, 3,
                  6]], atol=1e-2)
  # Test set: valid frames only, one view, 17 universal joints.
  assert sorted(int(e["frame"]) for e in test) == [0, 2, 3]
  cam = mpi_inf_3dhp.TEST_INTRINSICS[1]
  for ex in test:
    n = int(ex["frame"])
    assert ex["image"].shape == (1, S, S, 3)
    assert np.all(ex["mask"] == 255)
    assert ex["subject"].decode() == "TS1"
    assert ex["action"].decode() == mpi_inf_3dhp.ACTIVITY_NAMES[
        {0: 1, 2: 3, 3: 7}[n]]
    np.testing.assert_allclose(ex["joints_3d_univ17"][0],
                               0.95 * truth["test"][n], atol=1e-2)
    j18 = skeleton.convert(truth["test"][n], "mpi3dhp17", "h36m18")
    np.testing.assert_allclose(ex["joints_3d_camera"][0], j18, atol=1e-2)
    affine = _expected_affine(j18[0], cam.focal, cam.center)
    np.testing.assert_allclose(
        ex["joints_2d_patch"][0],
        _apply(affine, _pinhole(j18, cam.focal, cam.center)), atol=1e-3)
    np.testing.assert_allclose(ex["rot"][0], np.eye(3))


def test_mpi_inf_3dhp_malformed_files(mpi_dir, tmp_path):
  root, _ = mpi_dir
  base = os.path.join(root, "mpi_inf_3dhp", "S1", "Seq1")
  cams = mpi_inf_3dhp.read_camera_calibration(
      os.path.join(base, "camera.calibration"))
  assert sorted(cams) == list(range(14))
  lines = open(os.path.join(base, "camera.calibration")).read().splitlines()
  lines[6] = "  intrinsic   1 2 3"
  bad = tmp_path / "camera.calibration"
  bad.write_text("\n".join(lines))
  with pytest.raises(ValueError, match=r"camera.calibration:7: expected 16"):
    mpi_inf_3dhp.read_camera_calibration(str(bad))
  mat = tmp_path / "annot.mat"
  cells = np.empty((14, 1), object)
  for i in range(14):
    cells[i, 0] = np.zeros((2, 56))
  scipy.io.savemat(str(mat), {"annot2": cells})
  with pytest.raises(ValueError, match=r"annot.mat: missing field 'annot3'"):
    mpi_inf_3dhp.read_train_annotations(str(mat))
  h5 = tmp_path / "annot_data.mat"
  with h5py.File(str(h5), "w") as f:
    f["annot3"] = np.zeros((2, 1, 17, 3))
  with pytest.raises(ValueError, match=r"annot_data.mat: missing fields"):
    mpi_inf_3dhp.read_test_annotations(str(h5))
  with pytest.raises(FileNotFoundError, match=r"S9.*annot.mat"):
    mpi_inf_3dhp.read_train_annotations(os.path.join(root, "S9",
                                                     "annot.mat"))


def test_mpi_test_annotations_v5_matches_hdf5(tmp_path):
  rng = np.random.default_rng(11)
  annot3 = rng.normal(size=(5, 1, 17, 3))  # frames first, as HDF5 shows it
  fields = {"annot2": annot3[..., :2], "annot3": annot3,
            "univ_annot3": 2 * annot3,
            "valid_frame": np.array([[1], [1], [0], [1], [0]], np.float64),
            "activity_annotation": np.arange(1, 6, dtype=np.float64)[:, None]}
  with h5py.File(str(tmp_path / "v73.mat"), "w") as f:
    for k, v in fields.items():
      f[k] = v
  # MATLAB v5 stores the MATLAB axis order (3 x 17 x 1 x N).
  scipy.io.savemat(str(tmp_path / "v5.mat"),
                   {k: np.asarray(v).T for k, v in fields.items()})
  a = mpi_inf_3dhp.read_test_annotations(str(tmp_path / "v73.mat"))
  b = mpi_inf_3dhp.read_test_annotations(str(tmp_path / "v5.mat"))
  for x in (a, b):
    np.testing.assert_allclose(x.annot3, annot3[:, 0])
    np.testing.assert_allclose(x.univ_annot3, 2 * annot3[:, 0])
    np.testing.assert_array_equal(x.valid, [True, True, False, True, False])
    np.testing.assert_array_equal(x.activity, [1, 2, 3, 4, 5])


# ----------------------------------------------------------------------------
# MPII.


@pytest.fixture(scope="module")
def mpii_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("mpii_data")
  rng = np.random.default_rng(3)
  entries = []
  for i in range(3):
    center = np.array([48.0 + i, 45.0 - i])  # 1-based
    scale = 0.3 + 0.05 * i
    joints = center + rng.uniform(-20, 20, (16, 2))
    if i == 1:
      joints[3] = [0.0, 0.0]  # unlabelled joint -> left out
    entries.append({"image": f"{i:09d}.jpg", "center": center.tolist(),
                    "scale": scale, "joints": joints.tolist(),
                    "joints_vis": [1] * 15 + [0]})
    head = joints[9] - 1.0
    _save(os.path.join(root, "mpii", "images", f"{i:09d}.jpg"),
          _blob_image(96, 96, head), quality=95)
    _save(os.path.join(root, "sam_masks", "mpii_val", f"{i:09d}.jpg"),
          np.repeat(_disc_mask(96, 96, center - 1, 14)[..., None], 3, -1),
          quality=95)
  os.makedirs(os.path.join(root, "mpii", "annot"))
  with open(os.path.join(root, "mpii", "annot", "mpii_val.json"), "w") as f:
    json.dump(entries, f)
  boxes = np.zeros((2, 2, 3))
  boxes[1] = [[30.0, 40.0, 50.0], [40.0, 40.0, 40.0]]
  scipy.io.savemat(os.path.join(root, "mpii", "annot", "mpii_gt_val.mat"),
                   {"headboxes_src": boxes})
  return root, entries


def test_mpii_builder(mpii_dir, tmp_path):
  root, entries = mpii_dir
  config = mpii.MpiiImagesConfig(name="tiny64", image_size=S)
  builder = _prepare(mpii.Builder, config, root, tmp_path)
  val = _examples(builder, "validation")
  assert sorted(e["image_name"].decode() for e in val) == [
      "000000000.jpg", "000000002.jpg"]
  for ex in val:
    i = int(ex["image_name"].decode()[:9])
    a = entries[i]
    assert ex["image"].shape == (1, S, S, 3)
    assert ex["joints_2d_patch"].shape == (1, 16, 2)
    side = a["scale"] * 200 * 1.25
    c = np.array(a["center"]) - 1 + [0, 15 * a["scale"]]
    k = S / side
    affine = np.array([[k, 0, S / 2 - k * c[0]], [0, k, S / 2 - k * c[1]]])
    np.testing.assert_allclose(ex["affine"][0], affine, atol=1e-4)
    expected = _apply(affine, np.array(a["joints"]) - 1)
    np.testing.assert_allclose(ex["joints_2d_patch"][0], expected, atol=1e-3)
    np.testing.assert_allclose(_blob_centroid(ex["image"][0]), expected[9],
                               atol=0.4)
    np.testing.assert_allclose(ex["joints_visible"][0], [1] * 15 + [0])
    np.testing.assert_allclose(ex["head_size"],
                               0.6 * np.hypot([30, 40, 50][i], 40), rtol=1e-5)


def test_mpii_malformed_json(tmp_path):
  path = tmp_path / "mpii_val.json"
  path.write_text(json.dumps([{"image": "a.jpg", "center": [1, 2],
                               "scale": 1.0, "joints": [[1, 2]] * 15,
                               "joints_vis": [1] * 15}]))
  with pytest.raises(ValueError, match=r"mpii_val.json: entry 0: expected 16"):
    mpii_json.read_mpii_json(str(path))
  path.write_text("[{]")
  with pytest.raises(ValueError, match=r"mpii_val.json: invalid JSON"):
    mpii_json.read_mpii_json(str(path))


# ----------------------------------------------------------------------------
# TikTok.


@pytest.fixture(scope="module")
def tiktok_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("tiktok_data")
  for video in (1, 2):
    for n in range(3):
      base = os.path.join(root, "TikTok_dataset", f"{video:05d}")
      img = np.full((80, 60, 3), 70, np.uint8)
      mask = np.zeros((80, 60), np.uint8)
      mask[30 + n:50 + n, 20:34] = 255  # 20 rows x 14 columns
      _save(os.path.join(base, "images", f"{n + 1:04d}.png"), img)
      _save(os.path.join(base, "masks", f"{n + 1:04d}.png"), mask)
  return root


def test_tiktok_builder(tiktok_dir, tmp_path):
  config = tiktok.TiktokImagesConfig(name="tiny64", image_size=S,
                                     train_videos=(1,), test_videos=(2,),
                                     trim=0)
  builder = _prepare(tiktok.Builder, config, tiktok_dir, tmp_path)
  train = _examples(builder, "train")
  assert len(train) == 3 and len(_examples(builder, "test")) == 3
  for ex in train:
    n = int(ex["frame"])
    assert ex["subject"].decode() == "00001"
    # Padded 80x80 (10 columns each side): box x 20+10-20=10 .. 33+10+20=63,
    # y 30+n-20 .. 49+n+20; side = max(53, 59) = 59.
    c = np.array([(10 + 63) / 2 - 10, (10 + n + 69 + n) / 2])
    k = S / 59.0
    affine = np.array([[k, 0, S / 2 - k * c[0]], [0, k, S / 2 - k * c[1]]])
    np.testing.assert_allclose(ex["affine"][0], affine, atol=1e-4)
    m = ex["mask"][0, ..., 0].astype(np.float64)
    yy, xx = np.mgrid[0:S, 0:S]
    centroid = [np.sum(m * xx) / m.sum(), np.sum(m * yy) / m.sum()]
    np.testing.assert_allclose(centroid, _apply(affine, np.array(
        [26.5, 39.5 + n])), atol=0.3)


def test_tiktok_mask_box_and_missing_mask(tmp_path):
  mask = np.zeros((40, 100), np.uint8)  # wider than tall: pads rows
  mask[10:20, 45:55] = 255
  center, side = tiktok_format.mask_box(mask, margin=5)
  # Padded 100x100, 30 rows on top: box x 40..59, y 35..54.
  np.testing.assert_allclose(center, [49.5, 44.5 - 30])
  assert side == 19
  with pytest.raises(ValueError, match="no person pixel"):
    tiktok_format.mask_box(np.zeros((5, 5), np.uint8))
  _save(str(tmp_path / "00005" / "images" / "0001.png"),
        np.zeros((4, 4, 3)))
  with pytest.raises(FileNotFoundError, match=r"00005.masks.0001.png"):
    tiktok_format.list_frames(str(tmp_path), 5, trim=0)


# ----------------------------------------------------------------------------
# Synthetic supervision renders.


@pytest.fixture(scope="module")
def surreal_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("surreal_data")
  base = os.path.join(root, "surreal_h36m_pose")
  rng = np.random.default_rng(5)
  truth = {}
  for item in (0, 2):
    joints = np.concatenate([rng.uniform(-0.6, 0.6, (18, 2)),
                             rng.uniform(-0.3, 0.3, (18, 1))], axis=1)
    joints[0, 2] = 0.0
    px = (joints[:, :2] + 1) / 2 * 96
    _save(os.path.join(base, "image", f"image_{item:06d}.png"),
          _blob_image(96, 96, px[10]))
    _save(os.path.join(base, "mask", f"mask_{item:06d}.png"),
          _disc_mask(96, 96, px[0], 12) // 255)  # stored as 0/1
    os.makedirs(os.path.join(base, "joints"), exist_ok=True)
    np.save(os.path.join(base, "joints", f"joint_{item:06d}.npy"), joints)
    truth[item] = joints
  np.save(os.path.join(base, "info.npy"), np.array([0, 2]))
  return root, truth


def test_surreal_pseudo_builder(surreal_dir, tmp_path):
  root, truth = surreal_dir
  config = surreal_pseudo.SurrealPseudoConfig(name="tiny64", image_size=S)
  builder = _prepare(surreal_pseudo.Builder, config, root, tmp_path)
  train = _examples(builder, "train")
  assert sorted(int(e["frame"]) for e in train) == [0, 2]
  for ex in train:
    joints = truth[int(ex["frame"])]
    expected = (joints[:, :2] + 1) / 2 * S  # 96 px render -> 64 px patch
    np.testing.assert_allclose(ex["joints_2d_patch"][0], expected, atol=1e-3)
    np.testing.assert_allclose(ex["joints_depth"][0], joints[:, 2] * 1000,
                               atol=1e-2)
    assert ex["mask"].max() == 255
    np.testing.assert_allclose(
        _blob_centroid(ex["image"][0]),
        _apply(ex["affine"][0], (joints[10, :2] + 1) / 2 * 96), atol=0.35)


def test_surreal_pseudo_malformed(tmp_path):
  info = tmp_path / "info.npy"
  np.save(str(info), np.array({"max_iter_num": 3}, dtype=object),
          allow_pickle=True)
  with pytest.raises(ValueError, match=r"info.npy: expected a plain integer"):
    surreal_format.read_item_ids(str(info))
  joints = tmp_path / "joint_000001.npy"
  np.save(str(joints), np.zeros((17, 3)))
  with pytest.raises(ValueError, match=r"joint_000001.npy: expected a \[18"):
    surreal_format.read_joints(str(joints))


# ----------------------------------------------------------------------------
# Patch helpers.


def test_warp_affine_pixel_centres():
  img = np.zeros((20, 20), np.uint8)
  img[5, 7] = 200
  # Doubling about the origin sends pixel (7, 5) to (14, 10).
  out = patches.warp_affine(img, np.array([[2.0, 0, 0], [0, 2.0, 0]]), 40)
  assert out[10, 14] == 200 and out[10, 15] == 100 and out[11, 14] == 100
  affine = camera.affine_transform(np.array([7.0, 5.0]), 10.0, 20)
  out = patches.warp_affine(img, affine, 20)
  assert np.unravel_index(np.argmax(out), out.shape) == (10, 10)
