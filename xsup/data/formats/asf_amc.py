"""Acclaim ASF (skeleton) / AMC (motion) files: parser, kinematics, H36M-17.

ASF: `:units` (`length` L: one file unit is 1/L inch; `angle` deg or rad),
`:root` (`order` of the AMC root values, e.g. `TX TY TZ RX RY RZ`, `axis`
order, rest `position` and `orientation`), `:bonedata` (one `begin ... end`
block per bone: `name`, `direction` (unit vector in world rest axes),
`length`, `axis ax ay az ORDER` (the bone's local frame), `dof`, `limits`)
and `:hierarchy` (`parent child child ...` lines).

AMC: header lines starting with `:` (`:DEGREES`/`:RADIANS`), then frames:
a frame number on its own line followed by `bone v1 v2 ...` lines, values
in the bone's `dof` order (root: `order`).

Rotation conventions (column vectors, the usual reading of the Acclaim
format): a rotation list is applied in the listed order, so `axis ... XYZ`
gives `C = Rz @ Ry @ Rx` and `dof rx ry rz` gives `M = Rz @ Ry @ Rx`. A
bone's world rotation is `G = G_parent @ C @ M @ C^T` (the root's:
`C @ M @ C^T` with its `orientation` as C), and its end is
`end = start + G @ (length * direction)`, `start` being the parent's end
(the root position for bones attached to the root). The root position is
the AMC `TX TY TZ` values (the ASF rest `position` for channels the root
`order` lacks). Lengths and translations are in file units (1/length inch).
"""

import dataclasses
import os
from typing import Dict, List, Optional, Tuple

import numpy as np

from xsup.data.formats import bvh
from xsup.data.formats import cmu

# CMU captures are 120 fps; AMC files do not store their rate.
CMU_AMC_FPS = 120.0

_ROTATION_DOFS = ("rx", "ry", "rz")
_ROOT_CHANNELS = ("TX", "TY", "TZ", "RX", "RY", "RZ")


@dataclasses.dataclass(frozen=True)
class Bone:
  """One ASF bone.

  Attributes:
    name: bone name.
    parent: index of the parent bone in `Asf.bones`, -1 for the root.
    direction: `[3]` unit vector, world rest axes.
    length: in file units.
    axis: `[3]` local frame Euler angles, in the ASF angle unit.
    axis_order: e.g. "XYZ" (the order the `axis` rotations apply in).
    dof: rotation degrees of freedom in AMC order, e.g. ("rx", "rz").
  """
  name: str
  parent: int
  direction: np.ndarray
  length: float
  axis: np.ndarray
  axis_order: str
  dof: Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Asf:
  """A parsed ASF skeleton (bones ordered parents first)."""
  bones: Tuple[Bone, ...]
  length_unit: float
  degrees: bool
  root_order: Tuple[str, ...]
  root_axis_order: str
  root_position: np.ndarray
  root_orientation: np.ndarray
  source: str = "<string>"

  @property
  def mm_per_unit(self) -> float:
    return cmu.mm_per_unit(self.length_unit)

  @property
  def names(self) -> Tuple[str, ...]:
    return tuple(b.name for b in self.bones)

  def index(self, name: str) -> int:
    for i, bone in enumerate(self.bones):
      if bone.name == name:
        return i
    raise KeyError(f"{self.source}: no bone named {name!r}; bones: "
                   f"{self.names}")


@dataclasses.dataclass(frozen=True)
class Amc:
  """Parsed AMC motion.

  Attributes:
    root: `[T, len(root_order)]` root values (file units / AMC angle unit).
    bones: bone name -> `[T, len(dof)]` values.
    degrees: whether the angles are in degrees.
    source: file name.
  """
  root: np.ndarray
  bones: Dict[str, np.ndarray]
  degrees: bool
  source: str = "<string>"

  @property
  def num_frames(self) -> int:
    return self.root.shape[0]


def _lines(text: str) -> List[Tuple[int, List[str]]]:
  """(line number, tokens) of the non-empty lines, `#` comments removed."""
  out = []
  for number, line in enumerate(text.splitlines(), start=1):
    fields = line.split("#", 1)[0].split()
    if fields:
      out.append((number, fields))
  return out


def _floats(fields: List[str], count: int, source: str, number: int,
            what: str) -> np.ndarray:
  if len(fields) < count:
    raise ValueError(f"{source}:{number}: expected {count} numbers for "
                     f"{what}, got {len(fields)}")
  try:
    return np.array([float(f) for f in fields[:count]])
  except ValueError:
    raise ValueError(f"{source}:{number}: expected numbers for {what}, got "
                     f"{fields[:count]}") from None


def _axis_order(token: str, source: str, number: int) -> str:
  order = token.upper()
  if len(order) != 3 or sorted(order) != ["X", "Y", "Z"]:
    raise ValueError(f"{source}:{number}: axis order must be a permutation "
                     f"of XYZ, got {token!r}")
  return order


def parse_asf(text: str, source: str = "<string>") -> Asf:
  """Parses the text of an ASF file.

  Raises:
    ValueError: malformed file, naming `source` and the line.
  """
  length_unit = 1.0
  degrees = True
  root_order: Tuple[str, ...] = _ROOT_CHANNELS
  root_axis = "XYZ"
  root_position = np.zeros(3)
  root_orientation = np.zeros(3)
  raw_bones: Dict[str, dict] = {}
  children: Dict[str, List[str]] = {}
  section = None
  bone: Optional[dict] = None
  in_hierarchy_block = False
  for number, fields in _lines(text):
    key = fields[0]
    if key.startswith(":"):
      if bone is not None:
        raise ValueError(f"{source}:{number}: bone {bone.get('name')!r} "
                         "has no 'end'")
      section = key.lower()
      if section in (":version", ":name", ":documentation"):
        continue
      if section not in (":units", ":root", ":bonedata", ":hierarchy"):
        raise ValueError(f"{source}:{number}: unknown ASF section {key!r}")
      continue
    low = key.lower()
    if section in (":version", ":name", ":documentation"):
      continue  # free text / metadata
    if section == ":units":
      if low == "length":
        length_unit = float(_floats(fields[1:], 1, source, number,
                                    "units length")[0])
        if length_unit <= 0:
          raise ValueError(f"{source}:{number}: units length must be > 0")
      elif low == "angle":
        if len(fields) < 2 or fields[1].lower() not in ("deg", "rad"):
          raise ValueError(f"{source}:{number}: units angle must be 'deg' "
                           "or 'rad'")
        degrees = fields[1].lower() == "deg"
    elif section == ":root":
      if low == "order":
        root_order = tuple(f.upper() for f in fields[1:])
        bad = [f for f in root_order if f not in _ROOT_CHANNELS]
        if bad or len(set(root_order)) != len(root_order):
          raise ValueError(f"{source}:{number}: root order must list "
                           f"distinct channels of {_ROOT_CHANNELS}, got "
                           f"{fields[1:]}")
      elif low == "axis":
        if len(fields) < 2:
          raise ValueError(f"{source}:{number}: root axis needs an order")
        root_axis = _axis_order(fields[1], source, number)
      elif low == "position":
        root_position = _floats(fields[1:], 3, source, number,
                                "root position")
      elif low == "orientation":
        root_orientation = _floats(fields[1:], 3, source, number,
                                   "root orientation")
    elif section == ":bonedata":
      if low == "begin":
        if bone is not None:
          raise ValueError(f"{source}:{number}: 'begin' inside a bone")
        bone = {"line": number, "dof": (), "axis": np.zeros(3),
                "axis_order": "XYZ"}
      elif low == "end":
        if bone is None:
          raise ValueError(f"{source}:{number}: 'end' without 'begin'")
        for field in ("name", "direction", "length"):
          if field not in bone:
            raise ValueError(f"{source}:{bone['line']}: bone block has no "
                             f"{field!r}")
        if bone["name"] in raw_bones or bone["name"] == "root":
          raise ValueError(f"{source}:{bone['line']}: duplicate bone "
                           f"{bone['name']!r}")
        raw_bones[bone["name"]] = bone
        bone = None
      elif bone is None:
        raise ValueError(f"{source}:{number}: {key!r} outside a "
                         "begin/end bone block")
      elif low == "name":
        if len(fields) < 2:
          raise ValueError(f"{source}:{number}: bone name missing")
        bone["name"] = fields[1]
      elif low == "direction":
        direction = _floats(fields[1:], 3, source, number, "direction")
        norm = np.linalg.norm(direction)
        if norm == 0:
          raise ValueError(f"{source}:{number}: zero bone direction")
        bone["direction"] = direction / norm
      elif low == "length":
        bone["length"] = float(_floats(fields[1:], 1, source, number,
                                       "length")[0])
      elif low == "axis":
        bone["axis"] = _floats(fields[1:], 3, source, number, "axis")
        if len(fields) < 5:
          raise ValueError(f"{source}:{number}: axis needs 3 angles and an "
                           "order (e.g. XYZ)")
        bone["axis_order"] = _axis_order(fields[4], source, number)
      elif low == "dof":
        dof = tuple(f.lower() for f in fields[1:])
        bad = [d for d in dof if d not in _ROTATION_DOFS]
        if bad:
          raise ValueError(f"{source}:{number}: unsupported dof {bad} (only "
                           f"rotations {_ROTATION_DOFS} are supported)")
        bone["dof"] = dof
      # id, limits (possibly over several lines), bodymass, cofmass: unused.
    elif section == ":hierarchy":
      if low == "begin":
        in_hierarchy_block = True
      elif low == "end":
        in_hierarchy_block = False
      elif in_hierarchy_block:
        children.setdefault(key, []).extend(fields[1:])
      else:
        raise ValueError(f"{source}:{number}: hierarchy line outside "
                         "begin/end")
    else:
      raise ValueError(f"{source}:{number}: {key!r} before any ASF section")
  if bone is not None:
    raise ValueError(f"{source}: bone {bone.get('name')!r} (line "
                     f"{bone['line']}) has no 'end'")
  if not raw_bones:
    raise ValueError(f"{source}: no bones (':bonedata' missing or empty)")
  if "root" not in children:
    raise ValueError(f"{source}: ':hierarchy' has no 'root' line")

  parent_of: Dict[str, str] = {}
  for parent, kids in children.items():
    if parent != "root" and parent not in raw_bones:
      raise ValueError(f"{source}: hierarchy names unknown bone {parent!r}")
    for kid in kids:
      if kid not in raw_bones:
        raise ValueError(f"{source}: hierarchy names unknown bone {kid!r}")
      if kid in parent_of:
        raise ValueError(f"{source}: bone {kid!r} has two parents")
      parent_of[kid] = parent
  orphans = sorted(set(raw_bones) - set(parent_of))
  if orphans:
    raise ValueError(f"{source}: bones not in the hierarchy: {orphans}")
  # Breadth-first from the root so parents precede children.
  order: List[str] = []
  index: Dict[str, int] = {"root": -1}
  frontier = ["root"]
  while frontier:
    nxt = []
    for name in frontier:
      for kid in children.get(name, []):
        index[kid] = len(order)
        order.append(kid)
        nxt.append(kid)
    frontier = nxt
  if len(order) != len(raw_bones):
    unreached = sorted(set(raw_bones) - set(order))
    raise ValueError(f"{source}: bones not connected to the root (cycle?): "
                     f"{unreached}")
  bones = tuple(
      Bone(name=name, parent=index[parent_of[name]],
           direction=raw_bones[name]["direction"],
           length=raw_bones[name]["length"], axis=raw_bones[name]["axis"],
           axis_order=raw_bones[name]["axis_order"],
           dof=raw_bones[name]["dof"]) for name in order)
  return Asf(bones=bones, length_unit=length_unit, degrees=degrees,
             root_order=root_order, root_axis_order=root_axis,
             root_position=root_position, root_orientation=root_orientation,
             source=source)


def parse_amc(text: str, asf: Asf, source: str = "<string>") -> Amc:
  """Parses the text of an AMC file recorded on skeleton `asf`.

  Every frame must give the root and every bone that has a dof.

  Raises:
    ValueError: malformed file, naming `source` and the line.
  """
  degrees = asf.degrees
  dof_count = {b.name: len(b.dof) for b in asf.bones}
  needed = sorted(n for n, c in dof_count.items() if c > 0)
  frames: List[Dict[str, np.ndarray]] = []
  frame_lines: List[int] = []
  current: Optional[Dict[str, np.ndarray]] = None
  for number, fields in _lines(text):
    key = fields[0]
    if key.startswith(":"):
      if current is not None:
        raise ValueError(f"{source}:{number}: header {key!r} after the "
                         "first frame")
      if key.upper() == ":DEGREES":
        degrees = True
      elif key.upper() == ":RADIANS":
        degrees = False
      continue
    if len(fields) == 1 and key.isdigit():
      current = {}
      frames.append(current)
      frame_lines.append(number)
      continue
    if current is None:
      raise ValueError(f"{source}:{number}: bone values before the first "
                       "frame number")
    if key == "root":
      count = len(asf.root_order)
    elif key in dof_count:
      count = dof_count[key]
    else:
      raise ValueError(f"{source}:{number}: unknown bone {key!r} (not in "
                       f"{asf.source})")
    if len(fields) - 1 != count:
      raise ValueError(f"{source}:{number}: bone {key!r} needs {count} "
                       f"values, got {len(fields) - 1}")
    if key in current:
      raise ValueError(f"{source}:{number}: bone {key!r} given twice in one "
                       "frame")
    current[key] = _floats(fields[1:], count, source, number, key)
  if not frames:
    raise ValueError(f"{source}: no frames")
  for frame, number in zip(frames, frame_lines):
    missing = [n for n in ["root"] + needed if n not in frame]
    if missing:
      raise ValueError(f"{source}:{number}: frame lacks bones {missing}")
  root = np.stack([f["root"] for f in frames])
  bones = {n: np.stack([f[n] for f in frames]) for n in needed}
  return Amc(root=root, bones=bones, degrees=degrees, source=source)


def _read(path) -> Tuple[str, str]:
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"File not found: {path}")
  with open(path, "r", encoding="utf-8", errors="replace") as f:
    return f.read(), path


def load_asf(path) -> Asf:
  """Reads and parses the ASF file at `path`."""
  text, path = _read(path)
  return parse_asf(text, source=path)


def load_amc(path, asf: Asf) -> Amc:
  """Reads and parses the AMC file at `path` recorded on `asf`."""
  text, path = _read(path)
  return parse_amc(text, asf, source=path)


def _applied_in_order(angles: np.ndarray, axes: str) -> np.ndarray:
  """Rotations applied in the listed order: `R_last @ ... @ R_first`."""
  return bvh.euler_to_matrix(angles[..., ::-1], axes[::-1])


def forward_kinematics(asf: Asf, amc: Amc) -> Tuple[np.ndarray, np.ndarray]:
  """World positions of every bone's end (and the root), file units/axes.

  Returns:
    `(root [T, 3], ends [T, B, 3])`, B = `len(asf.bones)` in `asf.bones`
    order.
  """
  t = amc.num_frames
  to_rad_asf = np.pi / 180.0 if asf.degrees else 1.0
  to_deg_amc = 1.0 if amc.degrees else 180.0 / np.pi
  deg_asf = 180.0 / np.pi * to_rad_asf  # ASF angle unit -> degrees

  root_vals = dict(zip(asf.root_order, amc.root.T))
  root_pos = np.stack([root_vals.get(c, np.full(t, asf.root_position[i]))
                       for i, c in enumerate(("TX", "TY", "TZ"))], -1)
  rot_channels = [c for c in asf.root_order if c.startswith("R")]
  root_m = _applied_in_order(
      np.stack([root_vals[c] * to_deg_amc for c in rot_channels], -1)
      if rot_channels else np.zeros((t, 0)),
      "".join(c[1] for c in rot_channels))
  c_root = _applied_in_order(asf.root_orientation * deg_asf,
                             asf.root_axis_order)
  root_rot = c_root @ root_m @ c_root.T

  num = len(asf.bones)
  ends = np.zeros((t, num, 3))
  global_rot = np.zeros((t, num, 3, 3))
  for b, bone in enumerate(asf.bones):
    c = _applied_in_order(bone.axis * deg_asf, bone.axis_order)
    if bone.dof:
      m = _applied_in_order(amc.bones[bone.name] * to_deg_amc,
                            "".join(d[1] for d in bone.dof))
    else:
      m = np.broadcast_to(np.eye(3), (t, 3, 3))
    if bone.parent < 0:
      parent_rot, start = root_rot, root_pos
    else:
      parent_rot, start = global_rot[:, bone.parent], ends[:, bone.parent]
    global_rot[:, b] = parent_rot @ c @ m @ c.T
    ends[:, b] = start + np.einsum("tij,j->ti", global_rot[:, b],
                                   bone.length * bone.direction)
  return root_pos, ends


def h36m17(asf: Asf, amc: Amc) -> np.ndarray:
  """H36M-17 joints of a CMU ASF/AMC pair, Z-up millimetres, every frame.

  Each joint is the end of a CMU bone (`cmu.H36M17_FROM_ASF_BONE`); the
  pelvis is the midpoint of the two hip joints. The ASF has the thorax and
  wrist segments, so no repair is needed (compare `bvh.cgspeed_h36m17`).

  Returns:
    `[T, 17, 3]` float32 mm, world Z up, at the capture rate.
  """
  missing = sorted(set(cmu.H36M17_FROM_ASF_BONE.values()) - set(asf.names))
  if missing:
    raise ValueError(f"{asf.source}: not a CMU skeleton, bones {missing} "
                     "are missing")
  _, ends = forward_kinematics(asf, amc)
  joints = {j: ends[:, asf.index(b)]
            for j, b in cmu.H36M17_FROM_ASF_BONE.items()}
  return cmu.to_z_up_mm(cmu.assemble_h36m17(joints),
                        asf.mm_per_unit).astype(np.float32)


def load_h36m17(asf_path, amc_path, source_fps: float = CMU_AMC_FPS,
                target_fps: float = cmu.TARGET_FPS) -> np.ndarray:
  """Reads a CMU ASF/AMC pair -> `[T', 17, 3]` float32 mm, Z up.

  Frames (captured at `source_fps`) are subsampled to `target_fps` by
  keeping every k-th frame, starting with the first.
  """
  asf = load_asf(asf_path)
  amc = load_amc(amc_path, asf)
  step = cmu.subsample_step(source_fps, target_fps)
  return h36m17(asf, amc)[::step]
