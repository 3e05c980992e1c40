"""Procedural human poses on the H36M-17 kinematic tree (no body model).

A pose is made by forward kinematics: every bone has a rest direction and a
length; every joint rotates the bones below it by a local rotation built from
anatomical angles (flexion, abduction/bending, twist). Angles come from an
"action" prior (standing, walking, sitting, ...) whose angles are correlated
inside one action (e.g. the arms swing against the legs when walking), plus a
small jitter, and are clipped to the anatomical limits below.

Frames and units:
  * World: millimetres, Z up. A sampled pose stands on the ground: its lowest
    joint lies `ANKLE_HEIGHT_MM` (times the subject's size) above z = 0, its
    pelvis is above the origin (x = y = 0), at ~950 mm for a standing pose.
  * Body frame (the rest pose and all local rotation axes): x forward, y to
    the subject's left, z up. The subject's forward direction therefore equals
    `cross(left_hip - right_hip, up)`. A pose is turned to face `yaw` (radians
    about +Z from +X).
  * Rest pose: legs straight down, spine and head up, arms hanging down along
    the body (an "I-pose", not a T-pose), shoulders and hips sideways.

Joint-angle table (degrees; defined for the left side, the right side is the
mirror image: rotations about the x and z axes change sign):

  ====================  ======  =====  ========================================
  degree of freedom     min     max    meaning (positive direction)
  ====================  ======  =====  ========================================
  root_pitch            -15     60     pelvis leans forward (bending, crouching)
  root_roll             -15     15     pelvis tilts sideways
  hip_flexion           -30     110    thigh swings forward
  hip_abduction         -20     45     thigh swings outward
  hip_rotation          -40     40     internal rotation of the thigh
  knee_flexion          0       140    shin folds backward (hinge)
  lumbar_flexion        -25     60     lower back bends forward
  lumbar_bend           -25     25     lower back bends to the left
  lumbar_twist          -30     30     lower back twists to the left
  chest_flexion         -15     40     upper back bends forward
  chest_bend            -15     15     upper back bends to the left
  chest_twist           -25     25     upper back twists to the left
  neck_flexion          -40     50     neck bends forward (chin down)
  neck_bend             -30     30     neck bends to the left
  head_flexion          -30     30     head nods forward
  head_bend             -20     20     head tilts to the left
  head_twist            -70     70     head turns to the left
  clavicle_elevation    -10     30     shoulder shrugs up
  clavicle_protraction  -15     20     shoulder moves forward
  shoulder_flexion      -50     180    upper arm swings forward / up
  shoulder_abduction    -20     170    upper arm swings outward / up
  shoulder_rotation     -60     80     internal rotation of the upper arm
  elbow_flexion         0       145    forearm folds forward (hinge)
  ====================  ======  =====  ========================================

Local rotation of a limb joint = R_flexion @ R_abduction @ R_twist (twist
about the bone's own rest axis first), so the knee and elbow hinges turn with
the hip and shoulder rotation: knees always fold backward and elbows toward
the front of the upper arm.

Actions (`ACTIONS`, drawn with `ACTION_PROBS`): standing, walking (gait phase
couples hips, knees, arm swing and torso twist), sitting (thighs near
horizontal, knees bent, hands on lap), bending (pelvis and back lean forward,
legs stay near vertical, arms hang), crouching (deep hip and knee flexion),
reaching (one or both arms raised, torso turned), free (each angle uniform in
a reduced range).
"""

from __future__ import annotations

from typing import Dict, Mapping, Tuple

import numpy as np

from xsup import skeleton

ACTIONS: Tuple[str, ...] = ("standing", "walking", "sitting", "bending",
                            "crouching", "reaching", "free")
ACTION_PROBS: Tuple[float, ...] = (0.18, 0.22, 0.15, 0.1, 0.1, 0.15, 0.1)

# Height of the lowest joint above the ground for a subject of size 1 (mm).
ANKLE_HEIGHT_MM = 50.0

DOF_LIMITS_DEG: Dict[str, Tuple[float, float]] = {
    "root_pitch": (-15.0, 60.0),
    "root_roll": (-15.0, 15.0),
    "hip_flexion": (-30.0, 110.0),
    "hip_abduction": (-20.0, 45.0),
    "hip_rotation": (-40.0, 40.0),
    "knee_flexion": (0.0, 140.0),
    "lumbar_flexion": (-25.0, 60.0),
    "lumbar_bend": (-25.0, 25.0),
    "lumbar_twist": (-30.0, 30.0),
    "chest_flexion": (-15.0, 40.0),
    "chest_bend": (-15.0, 15.0),
    "chest_twist": (-25.0, 25.0),
    "neck_flexion": (-40.0, 50.0),
    "neck_bend": (-30.0, 30.0),
    "head_flexion": (-30.0, 30.0),
    "head_bend": (-20.0, 20.0),
    "head_twist": (-70.0, 70.0),
    "clavicle_elevation": (-10.0, 30.0),
    "clavicle_protraction": (-15.0, 20.0),
    "shoulder_flexion": (-50.0, 180.0),
    "shoulder_abduction": (-20.0, 170.0),
    "shoulder_rotation": (-60.0, 80.0),
    "elbow_flexion": (0.0, 145.0),
}

# Degrees of freedom that exist once per side ("left_<dof>", "right_<dof>").
SIDED_DOFS: Tuple[str, ...] = (
    "hip_flexion", "hip_abduction", "hip_rotation", "knee_flexion",
    "clavicle_elevation", "clavicle_protraction", "shoulder_flexion",
    "shoulder_abduction", "shoulder_rotation", "elbow_flexion")

SIDES = ("left", "right")


def dof_names() -> Tuple[str, ...]:
  """All per-sample angle names: central DOFs, `left_`/`right_` sided ones."""
  names = []
  for dof in DOF_LIMITS_DEG:
    if dof in SIDED_DOFS:
      names.extend(f"{side}_{dof}" for side in SIDES)
    else:
      names.append(dof)
  return tuple(names)


def _limits(name: str) -> Tuple[float, float]:
  for side in SIDES:
    if name.startswith(side + "_"):
      return DOF_LIMITS_DEG[name[len(side) + 1:]]
  return DOF_LIMITS_DEG[name]


# Mean length (mm) of the bone ending at each H36M-17 joint (Human3.6M-like).
_MEAN_BONE_MM = {
    "hip": 132.9, "thigh": 442.9, "shin": 454.2, "lumbar": 233.4,
    "chest": 257.1, "neck": 121.1, "head": 115.0, "clavicle": 151.0,
    "upper_arm": 278.9, "forearm": 251.7,
}
# Bone name of each H36M-17 joint (the bone from its parent to it).
_BONE_OF_JOINT = (None, "hip", "thigh", "shin", "hip", "thigh", "shin",
                  "lumbar", "chest", "neck", "head", "clavicle", "upper_arm",
                  "forearm", "clavicle", "upper_arm", "forearm")


def mean_bone_lengths_mm() -> np.ndarray:
  """`[17]` float32: mean length (mm) of the bone (j, parent(j)); 0 for root."""
  return np.array([0.0 if b is None else _MEAN_BONE_MM[b]
                   for b in _BONE_OF_JOINT], np.float32)


def rest_directions() -> np.ndarray:
  """`[17, 3]` float64 unit rest direction of each bone in the body frame.

  Body frame: x forward, y left, z up. Row 0 (root) is zero.
  """
  d = np.zeros((17, 3))
  d[1] = (0.0, -1.0, -0.05)   # pelvis -> right hip
  d[4] = (0.0, 1.0, -0.05)    # pelvis -> left hip
  d[2] = d[3] = d[5] = d[6] = (0.0, 0.0, -1.0)   # legs down
  d[7] = (0.0, 0.0, 1.0)      # pelvis -> spine
  d[8] = (0.05, 0.0, 1.0)     # spine -> thorax
  d[9] = (0.3, 0.0, 1.0)      # thorax -> neck/nose
  d[10] = (-0.1, 0.0, 1.0)    # nose -> head top
  d[11] = (0.0, 1.0, -0.05)   # thorax -> left shoulder
  d[14] = (0.0, -1.0, -0.05)  # thorax -> right shoulder
  d[12] = d[13] = d[15] = d[16] = (0.0, 0.0, -1.0)  # arms hang down
  norm = np.linalg.norm(d, axis=-1, keepdims=True)
  return d / np.maximum(norm, 1e-12)


def sample_bone_lengths(rng: np.random.Generator, num: int,
                        bone_scale_std: float = 0.06,
                        size_std: float = 0.05
                        ) -> Tuple[np.ndarray, np.ndarray]:
  """Random bone lengths, equal on the left and right.

  length = mean * size * factor, size ~ N(1, size_std) per subject and
  factor ~ N(1, bone_scale_std) per bone type (both clipped to +-25 %).

  Returns:
    `(lengths [num, 17] float64 mm, size [num])`.
  """
  size = np.clip(rng.normal(1.0, size_std, num), 0.75, 1.25)
  names = list(_MEAN_BONE_MM)
  factors = np.clip(rng.normal(1.0, bone_scale_std, (num, len(names))),
                    0.75, 1.25)
  mean = mean_bone_lengths_mm().astype(np.float64)
  lengths = np.zeros((num, 17))
  for j, b in enumerate(_BONE_OF_JOINT):
    if b is not None:
      lengths[:, j] = mean[j] * size * factors[:, names.index(b)]
  return lengths, size


def _rot(angle_deg: np.ndarray, axis: str) -> np.ndarray:
  """`[N]` degrees -> `[N, 3, 3]` float64 rotation about a body axis.

  Same convention as `xsup.geometry.rotations.rotation_about_axis`, in numpy
  float64: the sampler runs inside data pipelines, where eager JAX calls would
  compile anew for every batch size (seconds each).
  """
  rad = np.deg2rad(np.asarray(angle_deg, np.float64))
  c, s = np.cos(rad), np.sin(rad)
  one = np.ones_like(rad)
  i = "xyz".index(axis)
  j, k = (i + 1) % 3, (i + 2) % 3
  rot = np.zeros(rad.shape + (3, 3))
  rot[..., i, i] = one
  rot[..., j, j] = c
  rot[..., k, k] = c
  rot[..., k, j] = s
  rot[..., j, k] = -s
  return rot


def _angle(angles: Mapping[str, np.ndarray], name: str, num: int
           ) -> np.ndarray:
  if name not in angles:
    return np.zeros(num)
  value = np.asarray(angles[name], np.float64)
  return np.broadcast_to(value, (num,))


def local_rotations(angles_deg: Mapping[str, np.ndarray], num: int
                    ) -> np.ndarray:
  """Local rotation of every bone from anatomical angles.

  Args:
    angles_deg: name (see `dof_names()`) -> `[num]` degrees; missing names
      are 0 (rest). Unknown names raise ValueError.
    num: batch size.
  Returns:
    `[num, 17, 3, 3]` float64: entry j rotates bone j (and everything below
    it) relative to its parent bone; entry 0 is the pelvis orientation
    without yaw.
  """
  unknown = set(angles_deg) - set(dof_names())
  if unknown:
    raise ValueError(f"poses.local_rotations: unknown angle names "
                     f"{sorted(unknown)}; known: {dof_names()}")
  a = lambda name: _angle(angles_deg, name, num)
  eye = np.broadcast_to(np.eye(3), (num, 3, 3))
  rots = np.array(np.broadcast_to(eye, (17, num, 3, 3)))
  rots[0] = _rot(a("root_pitch"), "y") @ _rot(-a("root_roll"), "x")
  # Spine, neck and head: flexion about +y bends toward +x (forward).
  rots[7] = (_rot(a("lumbar_flexion"), "y") @ _rot(-a("lumbar_bend"), "x")
             @ _rot(a("lumbar_twist"), "z"))
  rots[8] = (_rot(a("chest_flexion"), "y") @ _rot(-a("chest_bend"), "x")
             @ _rot(a("chest_twist"), "z"))
  rots[9] = _rot(a("neck_flexion"), "y") @ _rot(-a("neck_bend"), "x")
  rots[10] = (_rot(a("head_flexion"), "y") @ _rot(-a("head_bend"), "x")
              @ _rot(a("head_twist"), "z"))
  h17 = skeleton.H36M17
  for side in SIDES:
    # Left-side conventions; the mirror (y -> -y) negates x and z angles.
    m = 1.0 if side == "left" else -1.0
    s = lambda dof: a(f"{side}_{dof}")  # pylint: disable=cell-var-from-loop
    hip, knee = h17.index(f"{side}_knee"), h17.index(f"{side}_ankle")
    shoulder = h17.index(f"{side}_shoulder")
    elbow, wrist = h17.index(f"{side}_elbow"), h17.index(f"{side}_wrist")
    rots[hip] = (_rot(-s("hip_flexion"), "y")
                 @ _rot(m * s("hip_abduction"), "x")
                 @ _rot(-m * s("hip_rotation"), "z"))
    rots[knee] = _rot(s("knee_flexion"), "y")
    rots[shoulder] = (_rot(m * s("clavicle_elevation"), "x")
                      @ _rot(-m * s("clavicle_protraction"), "z"))
    rots[elbow] = (_rot(-s("shoulder_flexion"), "y")
                   @ _rot(m * s("shoulder_abduction"), "x")
                   @ _rot(-m * s("shoulder_rotation"), "z"))
    rots[wrist] = _rot(-s("elbow_flexion"), "y")
  return np.moveaxis(rots, 0, 1)


def forward_kinematics(angles_deg: Mapping[str, np.ndarray],
                       bone_lengths_mm: np.ndarray,
                       yaw_rad: np.ndarray) -> np.ndarray:
  """Joint positions from angles, bone lengths and facing direction.

  Args:
    angles_deg: name -> `[N]` degrees (see `local_rotations`).
    bone_lengths_mm: `[N, 17]` length of bone (j, parent(j)).
    yaw_rad: `[N]` facing direction, radians about +Z (0 faces +X).
  Returns:
    `[N, 17, 3]` float64 world joints in mm with the pelvis at the origin.
  """
  bone_lengths_mm = np.asarray(bone_lengths_mm, np.float64)
  if bone_lengths_mm.ndim != 2 or bone_lengths_mm.shape[1] != 17:
    raise ValueError("poses.forward_kinematics: bone_lengths_mm must be "
                     f"[N, 17], got {bone_lengths_mm.shape}")
  num = bone_lengths_mm.shape[0]
  local = local_rotations(angles_deg, num)
  yaw = _rot(np.rad2deg(np.broadcast_to(yaw_rad, (num,))), "z")
  offsets = rest_directions()[None] * bone_lengths_mm[..., None]
  glob = [None] * 17
  pos = np.zeros((num, 17, 3))
  glob[0] = yaw @ local[:, 0]
  for j in range(1, 17):
    p = skeleton.H36M17.parents[j]
    glob[j] = glob[p] @ local[:, j]
    pos[:, j] = pos[:, p] + np.einsum("nij,nj->ni", glob[j], offsets[:, j])
  return pos


def _action_angles(rng: np.random.Generator, action: str, num: int
                   ) -> Dict[str, np.ndarray]:
  """Correlated angles (degrees, `[num]` each) of one action for all samples."""
  n = num
  z = np.zeros(n)
  ang: Dict[str, np.ndarray] = {}

  def both(dof, left, right=None):
    ang[f"left_{dof}"] = left
    ang[f"right_{dof}"] = left if right is None else right

  def standing_legs():
    both("hip_flexion", rng.normal(3, 6, n), rng.normal(3, 6, n))
    both("hip_abduction", rng.normal(4, 4, n), rng.normal(4, 4, n))
    both("hip_rotation", rng.normal(0, 10, n), rng.normal(0, 10, n))
    both("knee_flexion", np.abs(rng.normal(0, 8, n)) + 2,
         np.abs(rng.normal(0, 8, n)) + 2)

  def relaxed_arms(flex_mean=5.0):
    both("shoulder_flexion", rng.normal(flex_mean, 15, n),
         rng.normal(flex_mean, 15, n))
    both("shoulder_abduction", rng.normal(10, 8, n), rng.normal(10, 8, n))
    both("shoulder_rotation", rng.normal(25, 20, n), rng.normal(25, 20, n))
    both("elbow_flexion", rng.uniform(0, 70, n), rng.uniform(0, 70, n))

  if action == "standing":
    standing_legs()
    relaxed_arms()
    ang["lumbar_flexion"] = rng.normal(0, 6, n)
    ang["lumbar_twist"] = rng.normal(0, 8, n)
    ang["neck_flexion"] = rng.normal(5, 12, n)
    ang["head_twist"] = rng.normal(0, 25, n)
  elif action == "walking":
    phase = rng.uniform(-1, 1, n)
    amp = rng.uniform(15, 35, n)
    swing = amp * phase
    both("hip_flexion", 5 + swing + rng.normal(0, 3, n),
         5 - swing + rng.normal(0, 3, n))
    both("hip_abduction", rng.normal(3, 3, n), rng.normal(3, 3, n))
    both("hip_rotation", rng.normal(0, 6, n), rng.normal(0, 6, n))
    both("knee_flexion",
         8 + 45 * np.maximum(phase, 0) + np.abs(rng.normal(0, 8, n)),
         8 + 45 * np.maximum(-phase, 0) + np.abs(rng.normal(0, 8, n)))
    both("shoulder_flexion", -0.7 * swing + rng.normal(0, 5, n),
         0.7 * swing + rng.normal(0, 5, n))
    both("shoulder_abduction", rng.normal(8, 4, n), rng.normal(8, 4, n))
    both("shoulder_rotation", rng.normal(20, 10, n), rng.normal(20, 10, n))
    both("elbow_flexion",
         15 + 25 * np.maximum(-phase, 0) + np.abs(rng.normal(0, 8, n)),
         15 + 25 * np.maximum(phase, 0) + np.abs(rng.normal(0, 8, n)))
    ang["lumbar_twist"] = 0.25 * swing + rng.normal(0, 3, n)
    ang["lumbar_flexion"] = rng.normal(4, 4, n)
    ang["neck_flexion"] = rng.normal(5, 8, n)
    ang["head_twist"] = rng.normal(0, 15, n)
  elif action == "sitting":
    ang["root_pitch"] = rng.normal(0, 8, n)
    hip = rng.uniform(70, 105, n)
    both("hip_flexion", hip + rng.normal(0, 5, n), hip + rng.normal(0, 5, n))
    both("hip_abduction", rng.uniform(0, 25, n), rng.uniform(0, 25, n))
    both("hip_rotation", rng.normal(0, 12, n), rng.normal(0, 12, n))
    both("knee_flexion", rng.uniform(60, 120, n), rng.uniform(60, 120, n))
    both("shoulder_flexion", rng.uniform(-10, 50, n), rng.uniform(-10, 50, n))
    both("shoulder_abduction", rng.normal(10, 8, n), rng.normal(10, 8, n))
    both("shoulder_rotation", rng.uniform(10, 70, n), rng.uniform(10, 70, n))
    both("elbow_flexion", rng.uniform(30, 120, n), rng.uniform(30, 120, n))
    ang["lumbar_flexion"] = rng.normal(8, 10, n)
    ang["chest_flexion"] = rng.normal(5, 8, n)
    ang["neck_flexion"] = rng.normal(10, 12, n)
    ang["head_twist"] = rng.normal(0, 25, n)
  elif action == "bending":
    pitch = rng.uniform(20, 60, n)
    ang["root_pitch"] = pitch
    both("hip_flexion", pitch + rng.uniform(-5, 20, n),
         pitch + rng.uniform(-5, 20, n))
    both("hip_abduction", rng.normal(6, 5, n), rng.normal(6, 5, n))
    both("hip_rotation", rng.normal(0, 8, n), rng.normal(0, 8, n))
    both("knee_flexion", rng.uniform(0, 40, n), rng.uniform(0, 40, n))
    lumbar, chest = rng.uniform(10, 40, n), rng.uniform(0, 30, n)
    ang["lumbar_flexion"], ang["chest_flexion"] = lumbar, chest
    ang["neck_flexion"] = rng.normal(-15, 10, n)
    torso = pitch + lumbar + chest   # arms hang vertically at this flexion
    both("shoulder_flexion", torso + rng.normal(0, 20, n),
         torso + rng.normal(0, 20, n))
    both("shoulder_abduction", rng.normal(10, 8, n), rng.normal(10, 8, n))
    both("shoulder_rotation", rng.normal(30, 20, n), rng.normal(30, 20, n))
    both("elbow_flexion", rng.uniform(0, 40, n), rng.uniform(0, 40, n))
  elif action == "crouching":
    pitch = rng.uniform(10, 40, n)
    ang["root_pitch"] = pitch
    both("hip_flexion", pitch + rng.uniform(55, 80, n),
         pitch + rng.uniform(55, 80, n))
    both("hip_abduction", rng.uniform(0, 30, n), rng.uniform(0, 30, n))
    both("hip_rotation", rng.normal(-5, 10, n), rng.normal(-5, 10, n))
    knee = rng.uniform(100, 140, n)
    both("knee_flexion", knee + rng.normal(0, 5, n),
         knee + rng.normal(0, 5, n))
    ang["lumbar_flexion"] = rng.uniform(0, 30, n)
    ang["neck_flexion"] = rng.normal(-10, 12, n)
    both("shoulder_flexion", rng.uniform(0, 90, n), rng.uniform(0, 90, n))
    both("shoulder_abduction", rng.normal(10, 8, n), rng.normal(10, 8, n))
    both("shoulder_rotation", rng.uniform(0, 60, n), rng.uniform(0, 60, n))
    both("elbow_flexion", rng.uniform(20, 110, n), rng.uniform(20, 110, n))
  elif action == "reaching":
    standing_legs()
    relaxed_arms()
    # One arm (or both, 30 %) raised forward / sideways / overhead.
    left = rng.uniform(size=n) < 0.5
    both_arms = rng.uniform(size=n) < 0.3
    flex, abd = rng.uniform(40, 175, n), rng.uniform(0, 90, n)
    elbow = rng.uniform(0, 60, n)
    raised = (("left", left | both_arms), ("right", ~left | both_arms))
    for side, mask in raised:
      ang[f"{side}_shoulder_flexion"] = np.where(
          mask, flex + rng.normal(0, 10, n), ang[f"{side}_shoulder_flexion"])
      ang[f"{side}_shoulder_abduction"] = np.where(
          mask, abd * (1 - flex / 200) + rng.normal(0, 5, n),
          ang[f"{side}_shoulder_abduction"])
      ang[f"{side}_elbow_flexion"] = np.where(
          mask, elbow, ang[f"{side}_elbow_flexion"])
      ang[f"{side}_clavicle_elevation"] = np.where(
          mask, np.maximum(flex - 90, 0) / 5, z)
    turn = np.where(left, 1.0, -1.0) * rng.uniform(0, 25, n)
    ang["lumbar_twist"] = turn
    ang["chest_twist"] = 0.5 * turn
    ang["lumbar_bend"] = rng.normal(0, 8, n)
    ang["neck_flexion"] = rng.normal(-10, 15, n)
    ang["head_twist"] = turn + rng.normal(0, 15, n)
  elif action == "free":
    for name in dof_names():
      lo, hi = _limits(name)
      ang[name] = rng.uniform(0.6 * lo, 0.6 * hi, n)
    ang["root_pitch"] = rng.uniform(-5, 15, n)
    for side in SIDES:
      ang[f"{side}_hip_flexion"] = np.maximum(
          ang[f"{side}_hip_flexion"], ang["root_pitch"])
  else:
    raise ValueError(f"Unknown action {action!r}; known: {ACTIONS}")
  return ang


def sample_poses_and_actions(rng: np.random.Generator, num: int, *,
                             bone_scale_std: float = 0.06,
                             yaw_range_deg: float = 180.0,
                             angle_scale: float = 1.0,
                             jitter_deg: float = 3.0
                             ) -> Tuple[np.ndarray, np.ndarray]:
  """Random standing-on-the-ground poses and the action each was drawn from.

  Args:
    rng: numpy generator; the same seed gives the same poses.
    num: number of poses.
    bone_scale_std: std of the per-bone length factors (relative).
    yaw_range_deg: facing direction uniform in [-yaw_range_deg, yaw_range_deg]
      about +Z (0 faces +X).
    angle_scale: multiplies every sampled joint angle before clipping to
      `DOF_LIMITS_DEG` (0 gives the rest pose, >1 more extreme poses).
    jitter_deg: std of independent Gaussian noise added to every angle.
  Returns:
    `(joints [num, 17, 3] float32 world mm Z up, action [num] int32 index
    into ACTIONS)`.
  """
  if num < 0:
    raise ValueError(f"sample_poses: num must be >= 0, got {num}")
  lengths, size = sample_bone_lengths(rng, num, bone_scale_std)
  yaw = np.deg2rad(rng.uniform(-yaw_range_deg, yaw_range_deg, num))
  action = rng.choice(len(ACTIONS), size=num, p=np.asarray(ACTION_PROBS))
  angles = {name: np.zeros(num) for name in dof_names()}
  for k, name in enumerate(ACTIONS):
    mask = action == k
    for dof, value in _action_angles(rng, name, num).items():
      angles[dof] = np.where(mask, value, angles[dof])
  for name in dof_names():
    lo, hi = _limits(name)
    value = (angles[name] + rng.normal(0.0, jitter_deg, num)) * angle_scale
    angles[name] = np.clip(value, lo, hi)
  joints = forward_kinematics(angles, lengths, yaw)
  if num:
    lowest = joints[..., 2].min(axis=-1)
    joints[..., 2] += (ANKLE_HEIGHT_MM * size - lowest)[:, None]
  return joints.astype(np.float32), action.astype(np.int32)


def sample_poses(rng: np.random.Generator, num: int, *,
                 bone_scale_std: float = 0.06,
                 yaw_range_deg: float = 180.0,
                 angle_scale: float = 1.0) -> np.ndarray:
  """`[num, 17, 3]` float32 H36M-17 world joints (mm, Z up); see module doc."""
  joints, _ = sample_poses_and_actions(
      rng, num, bone_scale_std=bone_scale_std, yaw_range_deg=yaw_range_deg,
      angle_scale=angle_scale)
  return joints


def sample_poses_h36m18(rng: np.random.Generator, num: int, *,
                        bone_scale_std: float = 0.06,
                        yaw_range_deg: float = 180.0,
                        angle_scale: float = 1.0) -> np.ndarray:
  """`[num, 18, 3]` float32 H36M-18 world joints (mm, Z up)."""
  return skeleton.convert(
      sample_poses(rng, num, bone_scale_std=bone_scale_std,
                   yaw_range_deg=yaw_range_deg, angle_scale=angle_scale),
      "h36m17", "h36m18")
