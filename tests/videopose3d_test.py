"""Tests of the VideoPose3D readers and the Human3.6M camera tables."""

import numpy as np
import pytest

from xsup import skeleton
from xsup.data.formats import h36m_cameras
from xsup.data.formats import videopose3d
from xsup.geometry import camera as camera_lib

METADATA = {"layout_name": "h36m", "num_joints": 17,
            "keypoints_symmetry": [[4, 5, 6, 11, 12, 13],
                                   [1, 2, 3, 14, 15, 16]]}


def _write_3d(path, data):
  np.savez_compressed(path, positions_3d=data)


def _write_2d(path, data, metadata=None):
  np.savez_compressed(path, positions_2d=data,
                      metadata=METADATA if metadata is None else metadata)


def _fake_3d(rng):
  return {
      "S1": {"Walking 1": rng.normal(size=(5, 32, 3)).astype(np.float32),
             "Directions": rng.normal(size=(4, 32, 3)).astype(np.float32)},
      "S11": {"Directions": rng.normal(size=(3, 32, 3)).astype(np.float32),
              "Photo": rng.normal(size=(6, 32, 3)).astype(np.float32)},
  }


def _fake_2d(rng, positions_3d, extra=0):
  return {s: {a: [rng.normal(size=(len(p) + extra, 17, 2)).astype(np.float32)
                  for _ in range(4)] for a, p in acts.items()}
          for s, acts in positions_3d.items()}


def test_load_positions_roundtrip(tmp_path):
  rng = np.random.default_rng(0)
  data = _fake_3d(rng)
  _write_3d(tmp_path / "data_3d_h36m.npz", data)
  loaded = videopose3d.load_positions_3d(tmp_path / "data_3d_h36m.npz")
  assert sorted(loaded) == ["S1", "S11"]
  np.testing.assert_array_equal(loaded["S1"]["Walking 1"],
                                data["S1"]["Walking 1"])
  kp = _fake_2d(rng, data)
  _write_2d(tmp_path / "data_2d_h36m_gt.npz", kp)
  pos2d, meta = videopose3d.load_positions_2d(tmp_path / "data_2d_h36m_gt.npz")
  assert meta["num_joints"] == 17
  assert len(pos2d["S11"]["Photo"]) == 4
  np.testing.assert_array_equal(pos2d["S11"]["Photo"][2],
                                kp["S11"]["Photo"][2])


def test_missing_file_and_fields(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.npz"):
    videopose3d.load_positions_3d(tmp_path / "nope.npz")
  np.savez(tmp_path / "wrong.npz", something=np.zeros(3))
  with pytest.raises(KeyError, match="positions_3d"):
    videopose3d.load_positions_3d(tmp_path / "wrong.npz")
  with pytest.raises(KeyError, match="positions_2d"):
    videopose3d.load_positions_2d(tmp_path / "wrong.npz")
  np.savez(tmp_path / "nometa.npz",
           positions_2d={"S1": {"A": [np.zeros((2, 17, 2))] * 4}})
  with pytest.raises(KeyError, match="metadata"):
    videopose3d.load_positions_2d(tmp_path / "nometa.npz")


def test_wrong_shapes(tmp_path):
  _write_3d(tmp_path / "a.npz", {"S1": {"Walking": np.zeros((4, 17, 3))}})
  with pytest.raises(ValueError, match=r"positions_3d\['S1'\]\['Walking'\].*"
                     r"\[T, 32, 3\]"):
    videopose3d.load_positions_3d(tmp_path / "a.npz")
  _write_2d(tmp_path / "b.npz",
            {"S1": {"Walking": [np.zeros((4, 17, 3))] * 4}})
  with pytest.raises(ValueError, match=r"\[T, 17, 2\]"):
    videopose3d.load_positions_2d(tmp_path / "b.npz")
  _write_2d(tmp_path / "c.npz", {"S1": {"Walking": [np.zeros((4, 17, 2))]}},
            metadata=dict(METADATA, num_joints=16))
  with pytest.raises(ValueError, match="num_joints"):
    videopose3d.load_positions_2d(tmp_path / "c.npz")
  _write_3d(tmp_path / "d.npz", np.zeros((3, 32, 3)))
  with pytest.raises(ValueError, match="dict"):
    videopose3d.load_positions_3d(tmp_path / "d.npz")


def test_align_truncates_longer_2d():
  rng = np.random.default_rng(1)
  p3 = _fake_3d(rng)
  p2 = _fake_2d(rng, p3, extra=3)
  seqs = videopose3d.align_2d_to_3d(p3, p2, subjects=["S1", "S11"],
                                    ground_truth=True)
  assert [(s.subject, s.action) for s in seqs] == [
      ("S1", "Walking 1"), ("S1", "Directions"), ("S11", "Directions"),
      ("S11", "Photo")]
  for seq in seqs:
    for cam, kp in enumerate(seq.positions_2d):
      assert kp.shape == (len(seq.positions_3d), 17, 2)
      np.testing.assert_array_equal(
          kp, p2[seq.subject][seq.action][cam][:len(seq.positions_3d)])


def test_align_errors():
  rng = np.random.default_rng(2)
  p3 = _fake_3d(rng)
  short = _fake_2d(rng, p3)
  short["S1"]["Walking 1"][1] = short["S1"]["Walking 1"][1][:2]
  with pytest.raises(ValueError, match="at least as long"):
    videopose3d.align_2d_to_3d(p3, short, subjects=["S1"], ground_truth=True)
  p2 = _fake_2d(rng, p3)
  with pytest.raises(KeyError, match="S9"):
    videopose3d.align_2d_to_3d(p3, p2, subjects=["S9"], ground_truth=True)
  del p2["S11"]
  with pytest.raises(KeyError, match="subject 'S11' is missing"):
    videopose3d.align_2d_to_3d(p3, p2, subjects=["S11"], ground_truth=True)
  p2 = _fake_2d(rng, p3)
  del p2["S1"]["Walking 1"]
  with pytest.raises(KeyError, match="'Walking 1' of subject 'S1'"):
    videopose3d.align_2d_to_3d(p3, p2, subjects=["S1"], ground_truth=False)
  p2 = _fake_2d(rng, p3)
  p2["S1"]["Directions"] = p2["S1"]["Directions"][:3]
  with pytest.raises(ValueError, match="expected 4 cameras"):
    videopose3d.align_2d_to_3d(p3, p2, subjects=["S1"], ground_truth=True)


def test_s11_directions_gap_only_for_detections():
  rng = np.random.default_rng(3)
  p3 = _fake_3d(rng)
  p2 = _fake_2d(rng, p3)
  del p2["S11"]["Directions"]
  seqs = videopose3d.align_2d_to_3d(p3, p2, subjects=["S11"],
                                    ground_truth=False)
  assert [s.action for s in seqs] == ["Photo"]
  with pytest.raises(KeyError, match="Directions"):
    videopose3d.align_2d_to_3d(p3, p2, subjects=["S11"], ground_truth=True)
  # Only S11 Directions is excused.
  del p2["S1"]["Directions"]
  with pytest.raises(KeyError, match="Directions"):
    videopose3d.align_2d_to_3d(p3, p2, subjects=["S1"], ground_truth=False)


@pytest.mark.parametrize("name,expected", [
    ("Walking 1", "Walking"), ("Walking", "Walking"), ("WalkDog", "WalkDog"),
    ("WalkingDog 1", "WalkDog"), ("TakingPhoto", "TakingPhoto"),
    ("Photo 1", "TakingPhoto"), ("WalkTogether 2", "WalkTogether"),
    ("SittingDown", "SittingDown"), ("Sitting 2", "Sitting"),
    ("Discussion_1", "Discussion")])
def test_canonical_action(name, expected):
  assert h36m_cameras.canonical_action(name) == expected


def test_canonical_action_rejects_unknown():
  with pytest.raises(ValueError, match="Dancing"):
    h36m_cameras.canonical_action("Dancing 1")
  assert len(h36m_cameras.ACTIONS) == 15


def test_cameras_convention():
  cams = h36m_cameras.cameras()
  assert sorted(cams) == sorted(h36m_cameras.SUBJECTS)
  for subject, rig in cams.items():
    for i, cam in enumerate(rig):
      np.testing.assert_allclose(cam.rot @ cam.rot.T, np.eye(3), atol=1e-5)
      assert np.linalg.det(cam.rot) == pytest.approx(1.0, abs=1e-5)
      # The camera centre is the published position (mm -> m).
      centre = -cam.rot.T @ cam.trans
      np.testing.assert_allclose(
          centre, np.array(h36m_cameras.EXTRINSICS[subject][i].translation)
          / 1000.0, atol=1e-5)
      # Each camera sees the middle of the capture area, in the image.
      mid = np.array([[0.0, 0.0, 0.9]], np.float32)
      pc = np.asarray(camera_lib.world_to_camera(mid, cam.rot, cam.trans))
      assert 3.0 < pc[0, 2] < 7.0
      px = np.asarray(camera_lib.project(pc, cam.focal, cam.center,
                                         cam.radial, cam.tangential))
      assert np.all(px > 200) and np.all(px < 800), (subject, i, px)
  mm = h36m_cameras.camera("S9", 2, units="mm")
  np.testing.assert_allclose(mm.trans, cams["S9"][2].trans * 1000, rtol=1e-5)
  with pytest.raises(ValueError, match="S2"):
    h36m_cameras.camera("S2", 0)
  with pytest.raises(ValueError, match="index"):
    h36m_cameras.camera("S1", 4)


def test_cameras_agree_on_world_points():
  """A world point seen by all 4 cameras is recovered from any of them."""
  cams = h36m_cameras.cameras(["S5"])["S5"]
  world = np.array([[0.3, -0.2, 1.1]], np.float32)
  for cam in cams:
    pc = camera_lib.world_to_camera(world, cam.rot, cam.trans)
    back = camera_lib.camera_to_world(pc, cam.rot, cam.trans)
    np.testing.assert_allclose(np.asarray(back), world, atol=1e-5)
  # Each optical axis points at the capture area (within ~25 degrees).
  for cam in cams:
    centre = -cam.rot.T @ cam.trans
    to_mid = np.array([0.0, 0.0, 0.9]) - centre
    assert cam.rot[2] @ to_mid / np.linalg.norm(to_mid) > 0.9
  assert skeleton.H36M17.num_joints == videopose3d.NUM_KEYPOINTS


@pytest.mark.parametrize("name,expected", [
    ("Walking 1", "Walking"), ("Photo", "TakingPhoto"),
    ("WalkingDog 1", "WalkDog"), ("Dancing 1", "Dancing 1"),
    ("  Cartwheel ", "Cartwheel"), ("my_capture_07", "my_capture_07")])
def test_action_label_accepts_any_name(name, expected):
  assert h36m_cameras.action_label(name) == expected
