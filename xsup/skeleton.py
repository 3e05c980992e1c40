"""Joint layouts: names, kinematic parents, left/right pairs, bones and maps.

Every layout is a frozen `Skeleton`. Joint arrays anywhere in xsup have the
joint axis second to last: `[..., J, C]`. Convert between layouts with
`convert(x, src, dst)`; each conversion is an explicit table below (a joint of
`dst` is either one joint of `src` or the mean of several).

Layouts:
  * `h36m17`: VideoPose3D / lifting order (15 static joints of the 32 mocap
    joints dropped).
  * `h36m18`: X-as-Supervision / integral-regression order: `h36m17` plus a
    thorax joint (mean of the two shoulders) appended at index 17.
  * `h36m32`: the raw Human3.6M mocap joints (only used for conversion).
  * `mpi3dhp28`: MPI-INF-3DHP training annotations (28 joints).
  * `mpi3dhp17`: MPI-INF-3DHP test annotations (17 joints).
  * `mpii16`: MPII Human Pose 2D annotations.
  * `coco17`: COCO keypoints.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Sequence, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class Skeleton:
  """A fixed joint layout.

  Attributes:
    name: registry name.
    joint_names: names, one per joint; "left_"/"right_" prefixes mark sides.
    parents: parent index of each joint, -1 for the root.
  """
  name: str
  joint_names: Tuple[str, ...]
  parents: Tuple[int, ...]

  def __post_init__(self):
    if len(self.joint_names) != len(self.parents):
      raise ValueError(
          f"Skeleton {self.name!r}: {len(self.joint_names)} joint names but "
          f"{len(self.parents)} parents.")

  @property
  def num_joints(self) -> int:
    return len(self.joint_names)

  @property
  def root(self) -> int:
    return self.parents.index(-1)

  def index(self, joint_name: str) -> int:
    try:
      return self.joint_names.index(joint_name)
    except ValueError:
      raise ValueError(f"Skeleton {self.name!r} has no joint {joint_name!r}; "
                       f"joints: {self.joint_names}") from None

  @property
  def bones(self) -> Tuple[Tuple[int, int], ...]:
    """(child, parent) pairs of the kinematic tree, root excluded."""
    return tuple((c, p) for c, p in enumerate(self.parents) if p >= 0)

  @property
  def left_joints(self) -> Tuple[int, ...]:
    return tuple(i for i, n in enumerate(self.joint_names)
                 if n.startswith("left_"))

  @property
  def right_joints(self) -> Tuple[int, ...]:
    return tuple(i for i, n in enumerate(self.joint_names)
                 if n.startswith("right_"))

  @property
  def flip_pairs(self) -> Tuple[Tuple[int, int], ...]:
    """(right, left) index pairs of joints that swap under a mirror."""
    pairs = []
    for i, n in enumerate(self.joint_names):
      if n.startswith("right_"):
        pairs.append((i, self.index("left_" + n[len("right_"):])))
    return tuple(pairs)

  @property
  def flip_permutation(self) -> np.ndarray:
    """[J] int: index of each joint's mirror partner (itself if central)."""
    perm = np.arange(self.num_joints)
    for r, l in self.flip_pairs:
      perm[r], perm[l] = l, r
    return perm

  def adjacency(self, self_loops: bool = True) -> np.ndarray:
    """[J, J] float32 symmetric 0/1 adjacency of the kinematic tree."""
    adj = np.zeros((self.num_joints, self.num_joints), np.float32)
    for c, p in self.bones:
      adj[c, p] = adj[p, c] = 1.0
    if self_loops:
      adj += np.eye(self.num_joints, dtype=np.float32)
    return adj

  def bone_vectors(self, joints):
    """[..., J, C] -> [..., J, C]: joint minus parent (zero for the root)."""
    parents = np.array([max(p, 0) for p in self.parents])
    vec = joints - joints[..., parents, :]
    return vec


H36M17 = Skeleton(
    name="h36m17",
    joint_names=("pelvis", "right_hip", "right_knee", "right_ankle",
                 "left_hip", "left_knee", "left_ankle", "spine", "thorax",
                 "neck_nose", "head", "left_shoulder", "left_elbow",
                 "left_wrist", "right_shoulder", "right_elbow", "right_wrist"),
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
)

H36M18 = Skeleton(
    name="h36m18",
    joint_names=("pelvis", "right_hip", "right_knee", "right_ankle",
                 "left_hip", "left_knee", "left_ankle", "torso", "neck",
                 "nose", "head", "left_shoulder", "left_elbow", "left_wrist",
                 "right_shoulder", "right_elbow", "right_wrist", "thorax"),
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 17, 8, 9, 17, 11, 12, 17, 14, 15, 7),
)

# ITES joint groups of the student's non-local block (H36M-17 indices).
H36M17_NONLOCAL_GROUPS = ((2, 3), (5, 6), (1, 4), (0, 7), (8, 10), (15, 16),
                          (12, 13), (11, 14), (9,))

H36M32 = Skeleton(
    name="h36m32",
    joint_names=(
        "pelvis", "right_hip", "right_knee", "right_ankle", "right_foot",
        "right_toe", "left_hip", "left_knee", "left_ankle", "left_foot",
        "left_toe", "pelvis_dup", "spine", "thorax", "neck_nose", "head",
        "thorax_dup_l", "left_shoulder", "left_elbow", "left_wrist",
        "left_wrist_dup", "left_thumb", "left_hand", "left_hand_dup",
        "thorax_dup_r", "right_shoulder", "right_elbow", "right_wrist",
        "right_wrist_dup", "right_thumb", "right_hand", "right_hand_dup"),
    parents=(-1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 12, 16, 17,
             18, 19, 20, 19, 22, 12, 24, 25, 26, 27, 28, 27, 30),
)

MPI3DHP28 = Skeleton(
    name="mpi3dhp28",
    joint_names=(
        "spine3", "spine4", "spine2", "spine", "pelvis", "neck", "head",
        "head_top", "left_clavicle", "left_shoulder", "left_elbow",
        "left_wrist", "left_hand", "right_clavicle", "right_shoulder",
        "right_elbow", "right_wrist", "right_hand", "left_hip", "left_knee",
        "left_ankle", "left_foot", "left_toe", "right_hip", "right_knee",
        "right_ankle", "right_foot", "right_toe"),
    parents=(2, 0, 3, 4, -1, 1, 5, 6, 1, 8, 9, 10, 11, 1, 13, 14, 15, 16, 4,
             18, 19, 20, 21, 4, 23, 24, 25, 26),
)

MPI3DHP17 = Skeleton(
    name="mpi3dhp17",
    joint_names=("head_top", "neck", "right_shoulder", "right_elbow",
                 "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
                 "right_hip", "right_knee", "right_ankle", "left_hip",
                 "left_knee", "left_ankle", "pelvis", "spine", "head"),
    parents=(16, 15, 1, 2, 3, 1, 5, 6, 14, 8, 9, 14, 11, 12, -1, 14, 1),
)

# The 14 joints of the 3DHP PCK/AUC protocol: all test joints except pelvis,
# spine and head (MPI3DHP17 indices).
MPI3DHP17_PCK_JOINTS = tuple(range(14))

MPII16 = Skeleton(
    name="mpii16",
    joint_names=("right_ankle", "right_knee", "right_hip", "left_hip",
                 "left_knee", "left_ankle", "pelvis", "thorax", "upper_neck",
                 "head_top", "right_wrist", "right_elbow", "right_shoulder",
                 "left_shoulder", "left_elbow", "left_wrist"),
    parents=(1, 2, 6, 6, 3, 4, -1, 6, 7, 8, 11, 12, 7, 7, 13, 14),
)

COCO17 = Skeleton(
    name="coco17",
    joint_names=("nose", "left_eye", "right_eye", "left_ear", "right_ear",
                 "left_shoulder", "right_shoulder", "left_elbow",
                 "right_elbow", "left_wrist", "right_wrist", "left_hip",
                 "right_hip", "left_knee", "right_knee", "left_ankle",
                 "right_ankle"),
    # COCO has no pelvis: the nose is the tree root of this layout.
    parents=(-1, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14),
)

SKELETONS: Dict[str, Skeleton] = {
    s.name: s for s in (H36M17, H36M18, H36M32, MPI3DHP28, MPI3DHP17, MPII16,
                        COCO17)
}


def get(name: str) -> Skeleton:
  """Returns the layout registered under `name`."""
  if name not in SKELETONS:
    raise ValueError(f"Unknown skeleton {name!r}; known: {sorted(SKELETONS)}")
  return SKELETONS[name]


# Each conversion: for every joint of dst, the src joints whose mean it is.
_H36M17_FROM_H36M32 = ((0,), (1,), (2,), (3,), (6,), (7,), (8,), (12,), (13,),
                       (14,), (15,), (17,), (18,), (19,), (25,), (26,), (27,))
_H36M18_FROM_H36M17 = tuple((i,) for i in range(17)) + ((11, 14),)
# XSup's selection of 3DHP training joints for H36M-18 (thorax = spine4).
_H36M18_FROM_MPI3DHP28 = tuple(
    (i,) for i in (4, 23, 24, 25, 18, 19, 20, 2, 5, 6, 7, 9, 10, 11, 14, 15,
                   16, 1))
_MPI3DHP17_FROM_MPI3DHP28 = tuple(
    (i,) for i in (7, 5, 14, 15, 16, 9, 10, 11, 23, 24, 25, 18, 19, 20, 4, 3,
                   6))
# H36M-17 from 3DHP test joints: thorax = neck, neck_nose = head.
_H36M17_FROM_MPI3DHP17 = tuple(
    (i,) for i in (14, 8, 9, 10, 11, 12, 13, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4))
# 3DHP test joints from H36M-17 (or the first 17 joints of H36M-18, which
# share its order), the inverse of the table above: neck = H36M thorax (the
# H36M-18 "neck"), head = H36M neck/nose (H36M-18 "nose"), head top = H36M
# head. Approximation: 3DHP "spine" is the lowest spine joint while the
# H36M spine / H36M-18 "torso" lies higher (for H36M-18 poses mapped from
# 3DHP it is the 3DHP spine2 joint); spine is not one of the 14 PCK/AUC
# joints. The H36M-18 thorax (mid-shoulders) has no 3DHP joint and is
# dropped.
_MPI3DHP17_FROM_H36M17 = tuple(
    (i,) for i in (10, 8, 14, 15, 16, 11, 12, 13, 1, 2, 3, 4, 5, 6, 0, 7, 9))
_H36M17_FROM_MPII16 = ((6,), (2,), (1,), (0,), (3,), (4,), (5,), (6, 7), (7,),
                       (8,), (9,), (13,), (14,), (15,), (12,), (11,), (10,))
# COCO has no pelvis/spine/thorax/head top: built from hips/shoulders/face.
_H36M17_FROM_COCO17 = ((11, 12), (12,), (14,), (16,), (11,), (13,), (15,),
                       (5, 6, 11, 12), (5, 6), (0,), (1, 2, 3, 4), (5,), (7,),
                       (9,), (6,), (8,), (10,))

_CONVERSIONS: Dict[Tuple[str, str], Tuple[Tuple[int, ...], ...]] = {
    ("h36m32", "h36m17"): _H36M17_FROM_H36M32,
    ("h36m17", "h36m18"): _H36M18_FROM_H36M17,
    ("h36m18", "h36m17"): tuple((i,) for i in range(17)),
    ("mpi3dhp28", "h36m18"): _H36M18_FROM_MPI3DHP28,
    ("mpi3dhp28", "mpi3dhp17"): _MPI3DHP17_FROM_MPI3DHP28,
    ("mpi3dhp17", "h36m17"): _H36M17_FROM_MPI3DHP17,
    ("h36m17", "mpi3dhp17"): _MPI3DHP17_FROM_H36M17,
    ("h36m18", "mpi3dhp17"): _MPI3DHP17_FROM_H36M17,
    ("mpii16", "h36m17"): _H36M17_FROM_MPII16,
    ("coco17", "h36m17"): _H36M17_FROM_COCO17,
}


def conversion_matrix(src: str, dst: str) -> np.ndarray:
  """[J_dst, J_src] float32 averaging matrix; `dst = M @ src` per channel."""
  if src == dst:
    return np.eye(get(src).num_joints, dtype=np.float32)
  key = (src, dst)
  if key not in _CONVERSIONS:
    # Compose through h36m17 when a direct table is missing.
    if (src, "h36m17") in _CONVERSIONS and ("h36m17", dst) in _CONVERSIONS:
      return conversion_matrix("h36m17", dst) @ conversion_matrix(src, "h36m17")
    known = sorted(f"{a}->{b}" for a, b in _CONVERSIONS)
    raise ValueError(f"No joint conversion {src}->{dst}; known: {known}")
  table = _CONVERSIONS[key]
  mat = np.zeros((len(table), get(src).num_joints), np.float32)
  for j, sources in enumerate(table):
    mat[j, list(sources)] = 1.0 / len(sources)
  return mat


def convert(joints, src: str, dst: str):
  """Converts `[..., J_src, C]` joints of layout `src` to `[..., J_dst, C]`.

  Works for numpy and jax arrays (the conversion is a matmul).
  """
  num_src = get(src).num_joints
  if joints.shape[-2] != num_src:
    raise ValueError(f"convert({src}->{dst}): expected {num_src} joints on "
                     f"axis -2, got shape {tuple(joints.shape)}")
  mat = conversion_matrix(src, dst)
  if isinstance(joints, np.ndarray):
    return np.einsum("ij,...jc->...ic", mat.astype(joints.dtype), joints)
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  return jnp.einsum("ij,...jc->...ic", jnp.asarray(mat, joints.dtype), joints)


def flip_left_right(joints, skeleton: Skeleton, axis: int = 0):
  """Mirrors `[..., J, C]` joints: negates coordinate `axis`, swaps sides."""
  flipped = joints[..., skeleton.flip_permutation, :]
  sign = np.ones(joints.shape[-1], dtype=np.float32)
  sign[axis] = -1.0
  return flipped * sign


def limb_pairs(skeleton: Skeleton) -> Sequence[Tuple[Tuple[int, int],
                                                     Tuple[int, int]]]:
  """Pairs of mirrored bones ((child_r, parent_r), (child_l, parent_l))."""
  perm = skeleton.flip_permutation
  pairs = []
  for c, p in skeleton.bones:
    if skeleton.joint_names[c].startswith("right_"):
      pairs.append(((c, p), (int(perm[c]), int(perm[p]))))
  return pairs
