"""Tests of the ASF/AMC reader, its forward kinematics and H36M-17 mapping."""

import numpy as np
import pytest

import cmu_fixtures
from xsup.data.formats import asf_amc
from xsup.data.formats import bvh
from xsup.data.formats import cmu

ASF = """\
# two bones
:version 1.10
:name VICON
:units
  mass 1.0
  length 0.45
  angle deg
:documentation
   free text, ignored
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name a
     direction 1 0 0
     length 2
     axis 0 0 0  XYZ
    dof rx ry rz
    limits (-160.0 20.0)
           (-70.0 70.0)
           (-60.0 70.0)
  end
  begin
     id 2
     name b
     direction 2 0 0
     length 3
     axis 0 0 90  XYZ
    dof rx
    limits (-160.0 20.0)
  end
:hierarchy
  begin
    root a
    a b
  end
"""

AMC = """\
#!OML:ASF two.asf
:FULLY-SPECIFIED
:DEGREES
1
root 1 2 3 0 0 0
a 0 0 90
b 0
2
root 0 0 0 0 0 0
a 0 0 0
b 90
3
root 0 0 0 90 0 0
a 0 90 0
b 0
"""


def test_parse_asf():
  asf = asf_amc.parse_asf(ASF, "two.asf")
  assert asf.names == ("a", "b")
  assert [b.parent for b in asf.bones] == [-1, 0]
  np.testing.assert_allclose(asf.bones[1].direction, [1, 0, 0])  # normalised
  assert asf.bones[1].axis_order == "XYZ" and asf.bones[1].dof == ("rx",)
  assert asf.mm_per_unit == pytest.approx(56.4444, abs=1e-3)


def test_forward_kinematics_by_hand():
  asf = asf_amc.parse_asf(ASF, "two.asf")
  amc = asf_amc.parse_amc(AMC, asf, "two.amc")
  root, ends = asf_amc.forward_kinematics(asf, amc)
  np.testing.assert_allclose(root, [[1, 2, 3], [0, 0, 0], [0, 0, 0]])
  # Frame 1: a turned 90 deg about z: a ends at root + (0, 2, 0); b (local
  # frame C = Rz(90), no rotation of its own) continues along a.
  # Frame 2: b's rx of 90 deg is about its local x axis, which C turns onto
  # world y: C Rx C^T = Ry(90) sends (3, 0, 0) to (0, 0, -3).
  # Frame 3: root rx 90 then a's ry 90: G_a = Rx(90) Ry(90); G_a (2,0,0)
  # = Rx (0, 0, -2) = (0, 2, 0).
  np.testing.assert_allclose(ends, [
      [[1, 4, 3], [1, 7, 3]],
      [[2, 0, 0], [2, 0, -3]],
      [[0, 2, 0], [0, 5, 0]],
  ], atol=1e-9)


def test_dof_order_is_application_order():
  """`dof rz rx` applies rz first: M = Rx @ Rz."""
  asf = asf_amc.parse_asf(ASF.replace("dof rx ry rz", "dof rz rx"), "t.asf")
  amc = asf_amc.parse_amc(
      ":DEGREES\n1\nroot 0 0 0 0 0 0\na 90 90\nb 0\n", asf, "t.amc")
  _, ends = asf_amc.forward_kinematics(asf, amc)
  # Rz(90) (2,0,0) = (0,2,0); then Rx(90) (0,2,0) = (0,0,2).
  np.testing.assert_allclose(ends[0, 0], [0, 0, 2], atol=1e-9)


def test_radians_header_matches_degrees():
  asf = asf_amc.parse_asf(ASF, "two.asf")
  deg = asf_amc.parse_amc(AMC, asf, "d.amc")
  rad_text = AMC.replace(":DEGREES", ":RADIANS").replace(
      " 90", f" {np.pi / 2:.12f}")
  rad = asf_amc.parse_amc(rad_text, asf, "r.amc")
  assert not rad.degrees
  np.testing.assert_allclose(asf_amc.forward_kinematics(asf, rad)[1],
                             asf_amc.forward_kinematics(asf, deg)[1],
                             atol=1e-9)


@pytest.mark.parametrize("text,pattern", [
    (ASF.replace("dof rx\n", "dof rx tx\n"), r"two.asf:33: unsupported dof"),
    (ASF.replace("    a b\n", "    a c\n"), "unknown bone 'c'"),
    (ASF.replace("    a b\n", ""), r"not in the hierarchy: \['b'\]"),
    (ASF.replace("     length 3\n", ""), r"two.asf:27: .*'length'"),
    (ASF.replace("     direction 2 0 0", "     direction 2 0"),
     r"two.asf:30: expected 3 numbers"),
    (ASF.replace("axis 0 0 90  XYZ", "axis 0 0 90  XYQ"), "permutation"),
    (ASF.replace(":bonedata", ":bonedta"), "unknown ASF section"),
])
def test_asf_errors(text, pattern):
  with pytest.raises(ValueError, match=pattern):
    asf_amc.parse_asf(text, "two.asf")


@pytest.mark.parametrize("text,pattern", [
    (AMC.replace("b 90", "c 90"), r"two.amc:11: unknown bone 'c'"),
    (AMC.replace("a 0 0 90", "a 0 90"), r"two.amc:6: bone 'a' needs 3"),
    (AMC.replace("a 0 0 90", "a 0 x 90"), r"two.amc:6: expected numbers"),
    (AMC.replace("b 90\n", ""), r"two.amc:8: frame lacks bones \['b'\]"),
    (":DEGREES\n", "no frames"),
    (AMC.replace("1\nroot", "root", 1), "before the first frame"),
])
def test_amc_errors(text, pattern):
  asf = asf_amc.parse_asf(ASF, "two.asf")
  with pytest.raises(ValueError, match=pattern):
    asf_amc.parse_amc(text, asf, "two.amc")


def test_h36m17_rest_pose(tmp_path):
  motion = cmu_fixtures.random_motion(np.random.default_rng(0), 1)
  for key in motion:
    motion[key][:] = 0.0
  asf_path, amc_path = cmu_fixtures.write_asf_amc(tmp_path, "07", "01",
                                                  motion)
  joints = asf_amc.load_h36m17(asf_path, amc_path, source_fps=30.0)
  assert joints.shape == (1, 17, 3) and joints.dtype == np.float32
  vec = {n: np.array(v) for n, _, v in cmu_fixtures.BONES}
  thorax = vec["lowerback"] + vec["upperback"] + vec["thorax"]
  expect = {
      0: 0.5 * (vec["lhipjoint"] + vec["rhipjoint"]),
      1: vec["rhipjoint"],
      3: vec["rhipjoint"] + vec["rfemur"] + vec["rtibia"],
      7: vec["lowerback"],
      8: thorax,
      9: thorax + vec["lowerneck"] + vec["upperneck"],
      10: thorax + vec["lowerneck"] + vec["upperneck"] + vec["head"],
      13: thorax + vec["lclavicle"] + vec["lhumerus"] + vec["lradius"]
          + vec["lwrist"],
  }
  for j, p in expect.items():
    want = np.array([p[0], -p[2], p[1]]) * cmu.MM_PER_UNIT
    np.testing.assert_allclose(joints[0, j], want, atol=1e-3, err_msg=str(j))
  # Subject's left is +x (CMU rest pose), up is +z.
  assert joints[0, 4, 0] > joints[0, 1, 0]
  assert joints[0, 10, 2] > joints[0, 0, 2] > joints[0, 3, 2]


def test_asf_amc_agrees_with_repaired_cgspeed_bvh(tmp_path):
  """Same motion as ASF/AMC and as a cgspeed BVH (thorax and wrist omitted):
  the repaired BVH matches the ASF/AMC exactly; the unrepaired one does not.
  """
  motion = cmu_fixtures.random_motion(np.random.default_rng(1), 12)
  asf_path, amc_path = cmu_fixtures.write_asf_amc(tmp_path, "08", "02",
                                                  motion)
  bvh_path = cmu_fixtures.write_bvh(tmp_path / "08_02.bvh", motion)
  from_asf = asf_amc.load_h36m17(asf_path, amc_path)
  from_bvh = bvh.load_cgspeed_h36m17(bvh_path)
  assert from_asf.shape == (3, 17, 3)  # 12 frames at 120 fps -> 30 fps
  np.testing.assert_allclose(from_bvh, from_asf, atol=1e-2)
  plain = bvh.load_cgspeed_h36m17(bvh_path, repair=False)
  np.testing.assert_allclose(plain[:, :8], from_asf[:, :8], atol=1e-2)
  # Unrepaired, the neck, head, shoulders and elbows sit one thorax
  # length (= the upper back's) too close to the spine.
  shifted = [8, 9, 10, 11, 12, 14, 15]
  np.testing.assert_allclose(
      np.linalg.norm(plain[:, shifted] - from_asf[:, shifted], axis=-1),
      np.linalg.norm(cmu_fixtures.UPPERBACK) * cmu.MM_PER_UNIT, rtol=1e-4)


def test_not_a_cmu_skeleton():
  asf = asf_amc.parse_asf(ASF, "two.asf")
  amc = asf_amc.parse_amc(AMC, asf, "two.amc")
  with pytest.raises(ValueError, match="not a CMU skeleton"):
    asf_amc.h36m17(asf, amc)


def test_missing_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="none.asf"):
    asf_amc.load_asf(tmp_path / "none.asf")
