"""Tests of the BVH reader, its forward kinematics and the CMU conversion."""

import os
from pathlib import Path
import re

import numpy as np
import pytest

import cmu_fixtures
from xsup.data.formats import bvh
from xsup.data.formats import cmu
from xsup.geometry import rotations

SMALL = """\
HIERARCHY
ROOT root
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT a
  {
    OFFSET 1 0 0
    CHANNELS 3 Zrotation Yrotation Xrotation
    End Site
    {
      OFFSET 0 2 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
1 2 3 90 0 0 0 0 90
0 0 0 90 90 0 0 0 0
"""


def shared_dir():
  """The project's shared data folder, or None when absent."""
  candidates = [os.environ.get("XSUP_SHARED_DIR"),
                Path(__file__).resolve().parents[2] / "shared",
                Path(__file__).resolve().parents[1] / ".." / "shared"]
  for c in candidates:
    if c and (Path(c) / "data" / "cmu_mocap" / "dev_h36m17.npz").is_file():
      return Path(c)
  return None


def test_parse_small():
  b = bvh.parse(SMALL, "small.bvh")
  assert b.names == ("root", "a", "a_end")
  assert b.parents == (-1, 0, 1)
  assert b.joints[2].end_site and b.joints[2].channels == ()
  assert b.joints[0].channels[3:] == ("Zrotation", "Xrotation", "Yrotation")
  assert b.num_frames == 2 and b.fps == pytest.approx(30.0, rel=1e-5)
  assert b.motion.shape == (2, 9)


def test_forward_kinematics_by_hand():
  b = bvh.parse(SMALL, "small.bvh")
  pos, rot = bvh.forward_kinematics(b)
  # Frame 0: root at (1,2,3) turned 90 deg about z; joint a turned 90 deg
  # about x: a = (1,2,3) + Rz(1,0,0) = (1,3,3); end = a + Rz Rx (0,2,0).
  np.testing.assert_allclose(pos[0], [[1, 2, 3], [1, 3, 3], [1, 3, 5]],
                             atol=1e-9)
  # Frame 1: root channels Z=90 then X=90 compose as Rz @ Rx (listed
  # order); the reverse order would put joint a at (0, 0, 1).
  np.testing.assert_allclose(pos[1], [[0, 0, 0], [0, 1, 0], [0, 1, 2]],
                             atol=1e-9)
  np.testing.assert_allclose(rot[:, 2], rot[:, 1])


def test_euler_matches_geometry_rotations():
  angles = np.array([[30.0, -50.0, 120.0], [5.0, 80.0, -170.0]])
  for axes in ("ZXY", "xyz", "YZX"):
    got = bvh.euler_to_matrix(angles, axes)
    for a, r in zip(angles, got):
      want = np.eye(3)
      for angle, axis in zip(np.deg2rad(a), axes.lower()):
        want = want @ np.asarray(rotations.rotation_about_axis(
            np.float32(angle), axis))
      np.testing.assert_allclose(r, want, atol=1e-6)


@pytest.mark.parametrize("text,pattern", [
    (SMALL.replace("MOTION", "MOTON"), "no MOTION"),
    (SMALL.replace("Xrotation Yrotation\n", "Xrotation Wrotation\n"),
     r"small.bvh:5: .*channel name"),
    (SMALL.replace("OFFSET 1 0 0", "OFFSET 1 zero 0"),
     r"small.bvh:8: .*number"),
    (SMALL.replace("Frames: 2", "Frames: 3"), "3 frames"),
    (SMALL.replace("0 0 0 90 90 0 0 0 0", "0 0 0 90 90 0 0 0"),
     r"small.bvh:20: expected 9 channel values, got 8"),
    (SMALL.replace("0 0 0 90 90 0 0 0 0", "0 0 0 90 x 0 0 0 0"),
     r"small.bvh:20: not a number"),
    (SMALL.replace("Frame Time: 0.0333333", "Frame Time: 0"), "Frame Time"),
    (SMALL.replace("    End Site", "    Edn Site"), r"small.bvh:10:"),
    (SMALL.replace("JOINT a", "JOINT root"), "duplicate joint"),
])
def test_parse_errors(text, pattern):
  with pytest.raises(ValueError, match=pattern):
    bvh.parse(text, "small.bvh")


def test_load_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="gone.bvh"):
    bvh.load(tmp_path / "gone.bvh")


def test_cgspeed_repair_rest_and_rotated_thorax(tmp_path):
  """Hand-checked repair on the generated CMU-like skeleton."""
  motion = cmu_fixtures.random_motion(np.random.default_rng(0), 2)
  for key in motion:
    motion[key][:] = 0.0
  motion["thorax"][1] = [90.0, 0.0, 0.0]  # Chest2 turned 90 deg about x
  path = cmu_fixtures.write_bvh(tmp_path / "01_01.bvh", motion)
  b = bvh.load(path)
  assert bvh.cgspeed_variant(b) == "3dsmax"
  joints = bvh.cgspeed_h36m17(b)
  assert joints.shape == (2, 17, 3)
  vec = {n: np.array(v) for n, _, v in cmu_fixtures.BONES}
  up = vec["upperback"]
  chest2 = vec["lowerback"] + up  # top of the upper back
  # Rest pose, file units (Y up): thorax = chest2 + upperback vector.
  thorax = chest2 + up
  rest = {
      "thorax": thorax,
      "neck_nose": thorax + vec["lowerneck"] + vec["upperneck"],
      "left_shoulder": thorax + vec["lclavicle"],
      "left_wrist": thorax + vec["lclavicle"] + vec["lhumerus"]
                    + 1.5 * vec["lradius"],
      "pelvis": 0.5 * (vec["lhipjoint"] + vec["rhipjoint"]),
      "spine": vec["lowerback"],
  }
  names = ("pelvis", "right_hip", "right_knee", "right_ankle", "left_hip",
           "left_knee", "left_ankle", "spine", "thorax", "neck_nose", "head",
           "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
           "right_elbow", "right_wrist")
  for name, p in rest.items():
    want = np.array([p[0], -p[2], p[1]]) * cmu.MM_PER_UNIT  # Z up, mm
    np.testing.assert_allclose(joints[0, names.index(name)], want, atol=1e-3)
  # Frame 1: the thorax rotation Rx(90) turns everything above Chest2,
  # including the restored thorax vector itself.
  rx = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float64)
  thorax1 = chest2 + rx @ up
  neck1 = thorax1 + rx @ (vec["lowerneck"] + vec["upperneck"])
  for name, p in (("thorax", thorax1), ("neck_nose", neck1)):
    want = np.array([p[0], -p[2], p[1]]) * cmu.MM_PER_UNIT
    np.testing.assert_allclose(joints[1, names.index(name)], want, atol=1e-3)
  # Lower body is untouched by the thorax rotation.
  np.testing.assert_allclose(joints[1, :8], joints[0, :8], atol=1e-4)


# 3dsMax-friendly -> MotionBuilder-friendly cgspeed joint names.
_TO_MOTIONBUILDER = {
    "LeftHip": "LeftUpLeg", "LeftKnee": "LeftLeg", "LeftAnkle": "LeftFoot",
    "RightHip": "RightUpLeg", "RightKnee": "RightLeg",
    "RightAnkle": "RightFoot", "lowerback": "LowerBack", "Chest": "Spine",
    "Chest2": "Spine1", "lowerneck": "Neck", "Neck": "Neck1",
    "LeftCollar": "LeftShoulder", "LeftShoulder": "LeftArm",
    "LeftElbow": "LeftForeArm", "LeftWrist": "LeftHand",
    "RightCollar": "RightShoulder", "RightShoulder": "RightArm",
    "RightElbow": "RightForeArm", "RightWrist": "RightHand",
}


def test_motionbuilder_names_give_the_same_joints():
  motion = cmu_fixtures.random_motion(np.random.default_rng(3), 3)
  text = cmu_fixtures.bvh_text(motion)
  renamed = re.sub(r"JOINT (\w+)",
                   lambda m: "JOINT " + _TO_MOTIONBUILDER.get(m.group(1),
                                                             m.group(1)),
                   text)
  max_bvh = bvh.parse(text, "max.bvh")
  mb_bvh = bvh.parse(renamed, "mb.bvh")
  assert bvh.cgspeed_variant(mb_bvh) == "motionbuilder"
  np.testing.assert_allclose(bvh.cgspeed_h36m17(mb_bvh),
                             bvh.cgspeed_h36m17(max_bvh), atol=1e-4)


def test_not_cgspeed():
  with pytest.raises(ValueError, match="not a cgspeed"):
    bvh.cgspeed_h36m17(bvh.parse(SMALL, "small.bvh"))


def test_subsampling(tmp_path):
  motion = cmu_fixtures.random_motion(np.random.default_rng(1), 9)
  path = cmu_fixtures.write_bvh(tmp_path / "02_01.bvh", motion,
                                frame_time=1 / 120)
  full = bvh.cgspeed_h36m17(bvh.load(path))
  sub = bvh.load_cgspeed_h36m17(path)
  np.testing.assert_array_equal(sub, full[[0, 4, 8]])
  path = cmu_fixtures.write_bvh(tmp_path / "02_02.bvh", motion,
                                frame_time=1 / 60)
  np.testing.assert_array_equal(bvh.load_cgspeed_h36m17(path),
                                full[::2])
  path = cmu_fixtures.write_bvh(tmp_path / "02_03.bvh", motion,
                                frame_time=1 / 50)
  with pytest.raises(ValueError, match="50 fps"):
    bvh.load_cgspeed_h36m17(path)


def test_shared_cmu_clips_match_dev_set():
  """The real cgspeed files reproduce dev_h36m17.npz within 10 mm."""
  shared = shared_dir()
  if shared is None:
    pytest.skip("shared data folder not found (set XSUP_SHARED_DIR)")
  folder = shared / "data" / "cmu_mocap"
  dev = np.load(folder / "dev_h36m17.npz")
  for clip, cmu_id in enumerate(dev["clip_cmu_ids"]):
    path = folder / "bvh" / f"{cmu_id}.bvh"
    if not path.is_file():
      pytest.skip(f"{path} missing")
    ref = dev["positions_3d"][dev["clip_ids"] == clip]
    ours = bvh.load_cgspeed_h36m17(path)
    assert ours.shape == ref.shape
    err = np.linalg.norm(ours - ref, axis=-1)
    assert err.max() < 10.0, (cmu_id, err.max(axis=0))
    # Without the repair the upper body is ~10 cm off, the legs are not.
    plain = bvh.load_cgspeed_h36m17(path, repair=False)
    plain_err = np.linalg.norm(plain - ref, axis=-1)
    assert plain_err[:, :8].max() < 1.0
    assert plain_err[:, 8:].mean() > 80.0
