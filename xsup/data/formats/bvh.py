"""BVH motion files: parser, forward kinematics, CMU (cgspeed) -> H36M-17.

A BVH file has a HIERARCHY section (a tree of joints, each with an OFFSET
from its parent in the parent's frame and a list of CHANNELS; leaves may
carry an `End Site` with an offset) and a MOTION section (`Frames: N`,
`Frame Time: dt`, then N lines with one value per channel, in hierarchy
order). Rotation channels are Euler angles in degrees applied in the listed
order: channels `Zrotation Xrotation Yrotation` give the local rotation
`R = Rz @ Rx @ Ry` (column vectors). A joint's local transform is the
translation `offset + position channels` followed by that rotation.

`cgspeed_h36m17` converts the widely circulated cgspeed BVH conversions of
the CMU database (both the "3dsMax-friendly" and the "MotionBuilder-
friendly" joint names) to the 17 Human3.6M joints in Z-up millimetres,
restoring the two CMU segments those conversions omit (see the function).
"""

import dataclasses
import os
import re
from typing import Dict, List, Optional, Tuple

import numpy as np

from xsup.data.formats import cmu

_CHANNEL_RE = re.compile(r"^([xyz])(position|rotation)$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Joint:
  """One node of the hierarchy.

  Attributes:
    name: joint name; end sites are named `<parent name>_end`.
    parent: index of the parent joint, -1 for a root.
    offset: `[3]` offset from the parent (file units, parent frame).
    channels: channel names in file order, e.g. `("Xposition", ...,
      "Zrotation")`; empty for end sites.
    end_site: whether this node is an `End Site`.
  """
  name: str
  parent: int
  offset: np.ndarray
  channels: Tuple[str, ...]
  end_site: bool = False


@dataclasses.dataclass(frozen=True)
class Bvh:
  """A parsed BVH file.

  Attributes:
    joints: hierarchy in file order (parents before children), end sites
      included.
    frame_time: seconds per frame.
    motion: `[T, C]` float64 channel values, C = total channel count.
    source: file name (for messages).
  """
  joints: Tuple[Joint, ...]
  frame_time: float
  motion: np.ndarray
  source: str = "<string>"

  @property
  def num_frames(self) -> int:
    return self.motion.shape[0]

  @property
  def fps(self) -> float:
    return 1.0 / self.frame_time

  @property
  def names(self) -> Tuple[str, ...]:
    return tuple(j.name for j in self.joints)

  @property
  def parents(self) -> Tuple[int, ...]:
    return tuple(j.parent for j in self.joints)

  def index(self, name: str) -> int:
    for i, joint in enumerate(self.joints):
      if joint.name == name:
        return i
    raise KeyError(f"{self.source}: no joint named {name!r}; joints: "
                   f"{self.names}")

  def descendants(self, index: int) -> List[int]:
    """Indices of all joints below joint `index` (not itself)."""
    below = set([index])
    out = []
    for i, joint in enumerate(self.joints):
      if joint.parent in below:
        below.add(i)
        out.append(i)
    return out


class _Tokens:
  """Whitespace tokens of the HIERARCHY section with their line numbers."""

  def __init__(self, lines: List[str], source: str):
    self.items: List[Tuple[str, int]] = []
    for number, line in lines:
      for tok in line.replace("{", " { ").replace("}", " } ").split():
        self.items.append((tok, number))
    self.pos = 0
    self.source = source

  def error(self, message: str) -> ValueError:
    if self.pos < len(self.items):
      tok, line = self.items[self.pos]
      return ValueError(f"{self.source}:{line}: {message} (got {tok!r})")
    return ValueError(f"{self.source}: {message} (file ended)")

  def peek(self) -> Optional[str]:
    return self.items[self.pos][0] if self.pos < len(self.items) else None

  def line(self) -> int:
    return self.items[min(self.pos, len(self.items) - 1)][1]

  def take(self, expected: Optional[str] = None) -> str:
    if self.pos >= len(self.items):
      raise self.error(f"expected {expected or 'a token'}")
    tok = self.items[self.pos][0]
    if expected is not None and tok.upper() != expected.upper():
      raise self.error(f"expected {expected!r}")
    self.pos += 1
    return tok

  def take_float(self, what: str) -> float:
    if self.pos >= len(self.items):
      raise self.error(f"expected a number for {what}")
    tok = self.items[self.pos][0]
    try:
      value = float(tok)
    except ValueError:
      raise self.error(f"expected a number for {what}") from None
    self.pos += 1
    return value

  def take_name(self) -> str:
    """A joint name: the tokens up to `{` on the same line."""
    line = self.line()
    parts = []
    while (self.peek() is not None and self.peek() != "{" and
           self.items[self.pos][1] == line):
      parts.append(self.take())
    if not parts:
      raise self.error("expected a joint name")
    return " ".join(parts)


def _parse_joint(tokens: _Tokens, parent: int, joints: List[Joint]) -> None:
  """Parses `ROOT|JOINT name { ... }` (the keyword already consumed)."""
  name = tokens.take_name()
  tokens.take("{")
  tokens.take("OFFSET")
  offset = np.array([tokens.take_float(f"OFFSET of {name!r}")
                     for _ in range(3)])
  channels: Tuple[str, ...] = ()
  if (tokens.peek() or "").upper() == "CHANNELS":
    tokens.take()
    count_tok = tokens.take()
    try:
      count = int(count_tok)
    except ValueError:
      tokens.pos -= 1
      raise tokens.error(f"expected the channel count of {name!r}") from None
    chans = []
    for _ in range(count):
      tok = tokens.peek()
      match = _CHANNEL_RE.match(tok or "")
      if not match:
        raise tokens.error(f"expected a channel name of {name!r} "
                           "(Xposition ... Zrotation)")
      tokens.take()
      chans.append(match.group(1).upper() + match.group(2).lower())
    channels = tuple(chans)
  index = len(joints)
  joints.append(Joint(name, parent, offset, channels))
  while True:
    tok = (tokens.peek() or "").upper()
    if tok == "JOINT":
      tokens.take()
      _parse_joint(tokens, index, joints)
    elif tok == "END":
      tokens.take()
      tokens.take("Site")
      tokens.take("{")
      tokens.take("OFFSET")
      end = np.array([tokens.take_float(f"End Site OFFSET of {name!r}")
                      for _ in range(3)])
      tokens.take("}")
      joints.append(Joint(f"{name}_end", index, end, (), end_site=True))
    elif tok == "}":
      tokens.take()
      return
    else:
      raise tokens.error(f"expected JOINT, End Site or '}}' in {name!r}")


def parse(text: str, source: str = "<string>") -> Bvh:
  """Parses the text of a BVH file.

  Args:
    text: file contents.
    source: file name used in error messages.
  Returns:
    A `Bvh`.
  Raises:
    ValueError: malformed file, naming `source` and the line.
  """
  lines = text.splitlines()
  motion_at = None
  for i, line in enumerate(lines):
    if line.strip().upper() == "MOTION":
      motion_at = i
      break
  if motion_at is None:
    raise ValueError(f"{source}: no MOTION section")
  tokens = _Tokens([(i + 1, l) for i, l in enumerate(lines[:motion_at])],
                   source)
  tokens.take("HIERARCHY")
  joints: List[Joint] = []
  while tokens.peek() is not None:
    tokens.take("ROOT")
    _parse_joint(tokens, -1, joints)
  if not joints:
    raise ValueError(f"{source}: HIERARCHY has no ROOT joint")
  names = [j.name for j in joints]
  dups = sorted({n for n in names if names.count(n) > 1})
  if dups:
    raise ValueError(f"{source}: duplicate joint names {dups}")

  # MOTION header.
  rest = [(i + 1, l) for i, l in enumerate(lines[motion_at + 1:],
                                           start=motion_at + 1)]
  rest = [(n, l) for n, l in rest if l.strip()]
  if len(rest) < 2:
    raise ValueError(f"{source}:{motion_at + 1}: MOTION must be followed by "
                     "'Frames: N' and 'Frame Time: dt'")
  match = re.match(r"^\s*Frames\s*:\s*(\d+)\s*$", rest[0][1], re.IGNORECASE)
  if not match:
    raise ValueError(f"{source}:{rest[0][0]}: expected 'Frames: N', got "
                     f"{rest[0][1].strip()!r}")
  num_frames = int(match.group(1))
  match = re.match(r"^\s*Frame\s+Time\s*:\s*(\S+)\s*$", rest[1][1],
                   re.IGNORECASE)
  try:
    frame_time = float(match.group(1)) if match else float("nan")
  except ValueError:
    frame_time = float("nan")
  if not frame_time > 0:
    raise ValueError(f"{source}:{rest[1][0]}: expected 'Frame Time: dt' with"
                     f" dt > 0, got {rest[1][1].strip()!r}")

  # Frame lines.
  num_channels = sum(len(j.channels) for j in joints)
  data = rest[2:]
  if len(data) != num_frames:
    raise ValueError(f"{source}: header says {num_frames} frames but "
                     f"{len(data)} frame lines follow")
  try:
    values = np.array(" ".join(l for _, l in data).split(), np.float64)
  except ValueError:
    values = None
  if values is None or values.size != num_frames * num_channels:
    for number, line in data:
      fields = line.split()
      if len(fields) != num_channels:
        raise ValueError(f"{source}:{number}: expected {num_channels} channel"
                         f" values, got {len(fields)}")
      for field in fields:
        try:
          float(field)
        except ValueError:
          raise ValueError(f"{source}:{number}: not a number: {field!r}"
                           ) from None
    raise ValueError(f"{source}: malformed MOTION data")
  motion = values.reshape(num_frames, num_channels)
  if not np.all(np.isfinite(motion)):
    bad = int(np.argwhere(~np.all(np.isfinite(motion), axis=1))[0, 0])
    raise ValueError(f"{source}:{data[bad][0]}: non-finite channel value")
  return Bvh(tuple(joints), frame_time, motion, source)


def load(path) -> Bvh:
  """Reads and parses the BVH file at `path`."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"BVH file not found: {path}")
  with open(path, "r", encoding="utf-8", errors="replace") as f:
    return parse(f.read(), source=path)


def channel_rotations(angles_deg: np.ndarray, axes: str) -> np.ndarray:
  """Elementary rotations of Euler channels.

  Args:
    angles_deg: `[..., K]` degrees.
    axes: K letters from "xyz" (any case): the axis of each angle.
  Returns:
    `[..., K, 3, 3]` float64, the rotation by each angle about its axis.
  """
  angles = np.deg2rad(np.asarray(angles_deg, np.float64))
  if angles.shape[-1] != len(axes):
    raise ValueError(f"channel_rotations: {angles.shape[-1]} angles for axes "
                     f"{axes!r}")
  # numpy, not xsup.geometry.rotations: readers see arrays of every length,
  # and jax would compile its ops anew for each one.
  cos, sin = np.cos(angles), np.sin(angles)
  one, zero = np.ones_like(angles), np.zeros_like(angles)
  out = np.empty(angles.shape + (3, 3))
  for k, axis in enumerate(axes.lower()):
    c, s = cos[..., k], sin[..., k]
    o, z = one[..., k], zero[..., k]
    if axis == "x":
      rows = ((o, z, z), (z, c, -s), (z, s, c))
    elif axis == "y":
      rows = ((c, z, s), (z, o, z), (-s, z, c))
    elif axis == "z":
      rows = ((c, -s, z), (s, c, z), (z, z, o))
    else:
      raise ValueError(f"channel_rotations: unknown axis {axis!r} in "
                       f"{axes!r}")
    out[..., k, :, :] = np.stack([np.stack(r, -1) for r in rows], -2)
  return out


def euler_to_matrix(angles_deg: np.ndarray, axes: str) -> np.ndarray:
  """Euler angles applied in `axes` order -> rotation matrices.

  Args:
    angles_deg: `[..., K]` degrees, one per letter of `axes`.
    axes: K letters from "xyz" (any case), e.g. "ZXY".
  Returns:
    `[..., 3, 3]` float64 `R_axes[0] @ R_axes[1] @ ... @ R_axes[K-1]`
    (identity for K = 0).
  """
  elementary = channel_rotations(angles_deg, axes)
  out = np.broadcast_to(np.eye(3), elementary.shape[:-3] + (3, 3)).copy()
  for k in range(len(axes)):
    out = out @ elementary[..., k, :, :]
  return out


def forward_kinematics(bvh: Bvh) -> Tuple[np.ndarray, np.ndarray]:
  """Global positions and rotations of every joint (end sites included).

  Returns:
    `(positions [T, J, 3], rotations [T, J, 3, 3])` in file units and axes;
    a joint's rotation maps its local frame to the world (end sites take
    their parent's).
  """
  t = bvh.num_frames
  num = len(bvh.joints)
  # Elementary rotations of all rotation channels at once.
  channels = [c for j in bvh.joints for c in j.channels]
  rot_cols = [k for k, c in enumerate(channels) if c.endswith("rotation")]
  elementary = channel_rotations(
      bvh.motion[:, rot_cols], "".join(channels[k][0] for k in rot_cols))
  elementary_of = {col: i for i, col in enumerate(rot_cols)}
  positions = np.zeros((t, num, 3))
  global_rot = np.zeros((t, num, 3, 3))
  col = 0
  for j, joint in enumerate(bvh.joints):
    trans = np.broadcast_to(joint.offset, (t, 3)).copy()
    local = np.broadcast_to(np.eye(3), (t, 3, 3))
    for chan in joint.channels:
      if chan.endswith("position"):
        trans[:, "XYZ".index(chan[0])] += bvh.motion[:, col]
      else:
        local = local @ elementary[:, elementary_of[col]]
      col += 1
    if joint.parent < 0:
      positions[:, j] = trans
      global_rot[:, j] = local
    else:
      parent_rot = global_rot[:, joint.parent]
      positions[:, j] = positions[:, joint.parent] + np.einsum(
          "tij,tj->ti", parent_rot, trans)
      global_rot[:, j] = parent_rot @ local
  return positions, global_rot


# cgspeed joint names per role, for the two releases of the conversions.
# Roles: the joint at the END of the named CMU segment (see cmu.py), plus
# `upperback` (end of upperback = where the omitted thorax starts) and
# `radius` (end of the radius, where the omitted wrist segment starts).
_CGSPEED_NAMES: Dict[str, Dict[str, str]] = {
    "3dsmax": {
        "right_hip": "RightHip", "right_knee": "RightKnee",
        "right_ankle": "RightAnkle", "left_hip": "LeftHip",
        "left_knee": "LeftKnee", "left_ankle": "LeftAnkle",
        "spine": "Chest", "upperback": "Chest2", "neck_nose": "Head",
        "head": "Head_end", "left_shoulder": "LeftShoulder",
        "left_elbow": "LeftElbow", "left_radius": "LeftWrist",
        "right_shoulder": "RightShoulder", "right_elbow": "RightElbow",
        "right_radius": "RightWrist",
    },
    "motionbuilder": {
        "right_hip": "RightUpLeg", "right_knee": "RightLeg",
        "right_ankle": "RightFoot", "left_hip": "LeftUpLeg",
        "left_knee": "LeftLeg", "left_ankle": "LeftFoot",
        "spine": "Spine", "upperback": "Spine1", "neck_nose": "Head",
        "head": "Head_end", "left_shoulder": "LeftArm",
        "left_elbow": "LeftForeArm", "left_radius": "LeftHand",
        "right_shoulder": "RightArm", "right_elbow": "RightForeArm",
        "right_radius": "RightHand",
    },
}

# The CMU wrist segment is half the radius and collinear with it.
_WRIST_FROM_RADIUS = 1.5


def cgspeed_variant(bvh: Bvh) -> str:
  """Which cgspeed release ("3dsmax" or "motionbuilder") `bvh` follows."""
  names = set(bvh.names)
  for variant, table in _CGSPEED_NAMES.items():
    if set(table.values()) <= names:
      return variant
  missing = {v: sorted(set(t.values()) - names)
             for v, t in _CGSPEED_NAMES.items()}
  raise ValueError(f"{bvh.source}: not a cgspeed CMU BVH skeleton; joints "
                   f"missing for each known naming: {missing}")


def cgspeed_h36m17(bvh: Bvh, repair: bool = True) -> np.ndarray:
  """H36M-17 joints of a cgspeed CMU BVH, Z-up millimetres, every frame.

  The cgspeed conversions drop two CMU segments. With `repair` they are
  restored: (1) the thorax (between the top of the upper back and the base
  of the neck, where both clavicles start): every joint from there up and
  out is shifted by the upper-back vector (its OFFSET, which CMU's thorax
  vector matches to within millimetres) rotated by the global rotation of
  the joint where the thorax starts (the thorax's own rotation); (2) the
  wrist segment: the wrist is placed at `elbow + 1.5 (radius end - elbow)`.

  Args:
    bvh: a parsed cgspeed BVH (CMU units, Y up).
    repair: restore the omitted segments (default); False gives the plain
      forward kinematics of the file.
  Returns:
    `[T, 17, 3]` float32 mm, world Z up, at the file's frame rate.
  """
  table = _CGSPEED_NAMES[cgspeed_variant(bvh)]
  positions, global_rot = forward_kinematics(bvh)
  if repair:
    start = bvh.index(table["upperback"])
    shift = np.einsum("tij,j->ti", global_rot[:, start],
                      bvh.joints[start].offset)
    moved = bvh.descendants(start)
    positions[:, moved] += shift[:, None, :]
  joints = {}
  for role, name in table.items():
    joints[role] = positions[:, bvh.index(name)]
  for side in ("left", "right"):
    elbow = joints[f"{side}_elbow"]
    radius = joints.pop(f"{side}_radius")
    if repair:
      joints[f"{side}_wrist"] = elbow + _WRIST_FROM_RADIUS * (radius - elbow)
    else:
      joints[f"{side}_wrist"] = radius
  upperback = joints.pop("upperback")
  # The thorax joint (neck base) is where the shifted neck chain starts.
  if repair:
    joints["thorax"] = upperback + shift
  else:
    joints["thorax"] = upperback
  h36m = cmu.assemble_h36m17(joints)
  return cmu.to_z_up_mm(h36m).astype(np.float32)


def load_cgspeed_h36m17(path, target_fps: float = cmu.TARGET_FPS,
                        repair: bool = True) -> np.ndarray:
  """Reads a cgspeed CMU BVH file -> `[T', 17, 3]` float32 mm, Z up.

  Frames are subsampled to `target_fps` by keeping every k-th frame,
  starting with the first.
  """
  bvh = load(path)
  step = cmu.subsample_step(bvh.fps, target_fps)
  return cgspeed_h36m17(bvh, repair=repair)[::step]
