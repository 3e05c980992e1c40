"""Small CMU-like motion files for the reader and builder tests.

One skeleton (CMU bone names, made-up vectors in file units, Y up) written
both as an Acclaim ASF/AMC pair and as a cgspeed-style "3dsMax-friendly"
BVH. The BVH omits the thorax segment (the thorax vector equals the upper
back's, as in CMU) and the wrist segment (half the radius, collinear), like
the real cgspeed conversions, so a repaired BVH must match the ASF/AMC.
All ASF axes are zero, so a BVH joint's local rotation equals the Acclaim
rotation of the bone that starts at it.
"""

import os
from typing import Dict, List, Tuple

import numpy as np

# (bone, parent, vector) in file units; parents listed first.
UPPERBACK = (0.0, 2.0, 0.1)
BONES: List[Tuple[str, str, Tuple[float, float, float]]] = [
    ("lhipjoint", "root", (1.0, -1.0, 0.5)),
    ("lfemur", "lhipjoint", (0.5, -7.0, 0.0)),
    ("ltibia", "lfemur", (0.0, -7.0, 0.3)),
    ("rhipjoint", "root", (-1.0, -1.0, 0.5)),
    ("rfemur", "rhipjoint", (-0.5, -7.0, 0.0)),
    ("rtibia", "rfemur", (0.0, -7.0, 0.3)),
    ("lowerback", "root", (0.0, 2.0, 0.0)),
    ("upperback", "lowerback", UPPERBACK),
    ("thorax", "upperback", UPPERBACK),
    ("lowerneck", "thorax", (0.0, 1.5, 0.2)),
    ("upperneck", "lowerneck", (0.0, 1.5, 0.0)),
    ("head", "upperneck", (0.0, 1.6, 0.0)),
    ("lclavicle", "thorax", (3.0, 1.0, 0.0)),
    ("lhumerus", "lclavicle", (0.0, -4.0, 0.0)),
    ("lradius", "lhumerus", (0.0, -3.0, 0.0)),
    ("lwrist", "lradius", (0.0, -1.5, 0.0)),
    ("rclavicle", "thorax", (-3.0, 1.0, 0.0)),
    ("rhumerus", "rclavicle", (0.0, -4.0, 0.0)),
    ("rradius", "rhumerus", (0.0, -3.0, 0.0)),
    ("rwrist", "rradius", (0.0, -1.5, 0.0)),
]
# Bones with rotation dofs (rx ry rz). The wrist segments have none, so
# they stay collinear with the radius, as the BVH repair assumes.
ROTATING = [b for b, _, _ in BONES if b not in ("lwrist", "rwrist")]

# cgspeed BVH: joint name -> (parent joint, offset source, ASF bone whose
# rotation the joint carries). Offset source: a bone vector or "0".
_BVH = [
    ("LHipJoint", "Hips", "0", "lhipjoint"),
    ("LeftHip", "LHipJoint", "lhipjoint", "lfemur"),
    ("LeftKnee", "LeftHip", "lfemur", "ltibia"),
    ("LeftAnkle", "LeftKnee", "ltibia", None),
    ("RHipJoint", "Hips", "0", "rhipjoint"),
    ("RightHip", "RHipJoint", "rhipjoint", "rfemur"),
    ("RightKnee", "RightHip", "rfemur", "rtibia"),
    ("RightAnkle", "RightKnee", "rtibia", None),
    ("lowerback", "Hips", "0", "lowerback"),
    ("Chest", "lowerback", "lowerback", "upperback"),
    ("Chest2", "Chest", "upperback", "thorax"),
    ("lowerneck", "Chest2", "0", "lowerneck"),
    ("Neck", "lowerneck", "lowerneck", "upperneck"),
    ("Head", "Neck", "upperneck", "head"),
    ("LeftCollar", "Chest2", "0", "lclavicle"),
    ("LeftShoulder", "LeftCollar", "lclavicle", "lhumerus"),
    ("LeftElbow", "LeftShoulder", "lhumerus", "lradius"),
    ("LeftWrist", "LeftElbow", "lradius", None),
    ("RightCollar", "Chest2", "0", "rclavicle"),
    ("RightShoulder", "RightCollar", "rclavicle", "rhumerus"),
    ("RightElbow", "RightShoulder", "rhumerus", "rradius"),
    ("RightWrist", "RightElbow", "rradius", None),
]
_END_SITES = {"LeftAnkle": (0.0, -0.5, 1.0), "RightAnkle": (0.0, -0.5, 1.0),
              "Head": (0.0, 1.6, 0.0), "LeftWrist": (0.0, -1.5, 0.0),
              "RightWrist": (0.0, -1.5, 0.0)}


def random_motion(rng: np.random.Generator, num_frames: int,
                  max_deg: float = 40.0) -> Dict[str, np.ndarray]:
  """root `[T, 6]` (tx ty tz rx ry rz) and bone -> `[T, 3]` (rx ry rz) deg."""
  root = np.concatenate([rng.uniform(-5, 5, (num_frames, 3)) +
                         np.array([0.0, 17.0, 0.0]),
                         rng.uniform(-max_deg, max_deg, (num_frames, 3))], 1)
  motion = {"root": root}
  for bone in ROTATING:
    motion[bone] = rng.uniform(-max_deg, max_deg, (num_frames, 3))
  return motion


def asf_text() -> str:
  lines = [":version 1.10", ":name VICON", ":units", "  mass 1.0",
           "  length 0.45", "  angle deg", ":documentation",
           "   made for tests", ":root", "   order TX TY TZ RX RY RZ",
           "   axis XYZ", "   position 0 0 0", "   orientation 0 0 0",
           ":bonedata"]
  for i, (bone, _, vec) in enumerate(BONES):
    vec = np.asarray(vec)
    length = np.linalg.norm(vec)
    direction = vec / length
    lines += ["  begin", f"     id {i + 1}", f"     name {bone}",
              "     direction " + " ".join(f"{d:.10f}" for d in direction),
              f"     length {length:.10f}", "     axis 0 0 0  XYZ"]
    if bone in ROTATING:
      lines += ["    dof rx ry rz", "    limits (-160.0 20.0)",
                "           (-70.0 70.0)", "           (-60.0 70.0)"]
    lines.append("  end")
  children: Dict[str, List[str]] = {}
  for bone, parent, _ in BONES:
    children.setdefault(parent, []).append(bone)
  lines += [":hierarchy", "  begin"]
  lines += [f"    {p} {' '.join(c)}" for p, c in children.items()]
  lines.append("  end")
  return "\n".join(lines) + "\n"


def amc_text(motion: Dict[str, np.ndarray]) -> str:
  lines = ["#!OML:ASF 131.asf", ":FULLY-SPECIFIED", ":DEGREES"]
  for t in range(len(motion["root"])):
    lines.append(str(t + 1))
    lines.append("root " + " ".join(f"{v:.8f}" for v in motion["root"][t]))
    for bone in ROTATING:
      lines.append(bone + " " + " ".join(f"{v:.8f}" for v in motion[bone][t]))
  return "\n".join(lines) + "\n"


def bvh_text(motion: Dict[str, np.ndarray], frame_time: float = 1 / 120
             ) -> str:
  vectors = {b: v for b, _, v in BONES}
  kids: Dict[str, List[str]] = {}
  for name, parent, _, _ in _BVH:
    kids.setdefault(parent, []).append(name)
  spec = {name: (src, rot) for name, _, src, rot in _BVH}
  order: List[str] = []
  out = ["HIERARCHY", "ROOT Hips", "{", "  OFFSET 0 0 0",
         "  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation "
         "Xrotation"]

  def write(name: str, depth: int) -> None:
    pad = "  " * depth
    src, _ = spec[name]
    offset = (0.0, 0.0, 0.0) if src == "0" else vectors[src]
    out.extend([f"{pad}JOINT {name}", f"{pad}{{",
                f"{pad}  OFFSET " + " ".join(f"{v:.10f}" for v in offset),
                f"{pad}  CHANNELS 3 Zrotation Yrotation Xrotation"])
    order.append(name)
    for kid in kids.get(name, []):
      write(kid, depth + 1)
    if name in _END_SITES:
      out.extend([f"{pad}  End Site", f"{pad}  {{",
                  f"{pad}    OFFSET " + " ".join(
                      f"{v:.10f}" for v in _END_SITES[name]),
                  f"{pad}  }}"])
    out.append(f"{pad}}}")

  for kid in kids["Hips"]:
    write(kid, 1)
  out.append("}")
  num = len(motion["root"])
  out += ["MOTION", f"Frames: {num}", f"Frame Time: {frame_time:.7f}"]
  for t in range(num):
    root = motion["root"][t]
    values = list(root[:3]) + list(root[3:][::-1])  # tx ty tz rz ry rx
    for name in order:
      bone = spec[name][1]
      angles = motion[bone][t] if bone in motion else np.zeros(3)
      values += list(angles[::-1])  # rz ry rx
    out.append(" ".join(f"{v:.8f}" for v in values))
  return "\n".join(out) + "\n"


def write_asf_amc(directory, subject: str, trial: str,
                  motion: Dict[str, np.ndarray]) -> Tuple[str, str]:
  os.makedirs(directory, exist_ok=True)
  asf = os.path.join(directory, f"{subject}.asf")
  amc = os.path.join(directory, f"{subject}_{trial}.amc")
  with open(asf, "w") as f:
    f.write(asf_text())
  with open(amc, "w") as f:
    f.write(amc_text(motion))
  return asf, amc


def write_bvh(path, motion: Dict[str, np.ndarray],
              frame_time: float = 1 / 120) -> str:
  os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
  with open(path, "w") as f:
    f.write(bvh_text(motion, frame_time))
  return os.fspath(path)
