"""Conventions of the CMU mocap data, shared by the BVH and ASF/AMC readers.

* Units: CMU files use `:units length 0.45`, i.e. 1 unit = 1/0.45 inch =
  56.444 mm.
* Axes: the files are Y up; xsup's world is Z up. `(x, y, z)_file ->
  (x, -z, y)` (a +90 degree rotation about X, no mirroring).
* Frame rate: captures are 120 fps (some 60 fps); the H36M-17 clips are
  subsampled to 30 fps by keeping every k-th frame (no filtering).
* H36M-17 joints from CMU bone ends: see `H36M17_FROM_ASF_BONE` and
  README of the developer set. The pelvis is the midpoint of the two hips.
"""

from typing import Dict, Mapping

import numpy as np

from xsup import skeleton

MM_PER_INCH = 25.4
CMU_LENGTH_UNIT = 0.45  # ASF `:units length`
MM_PER_UNIT = MM_PER_INCH / CMU_LENGTH_UNIT  # 56.444 mm per file unit
TARGET_FPS = 30.0

# H36M-17 joint (all but the pelvis) -> the CMU ASF bone whose end it is.
H36M17_FROM_ASF_BONE: Dict[str, str] = {
    "right_hip": "rhipjoint",
    "right_knee": "rfemur",
    "right_ankle": "rtibia",
    "left_hip": "lhipjoint",
    "left_knee": "lfemur",
    "left_ankle": "ltibia",
    "spine": "lowerback",
    "thorax": "thorax",
    "neck_nose": "upperneck",
    "head": "head",
    "left_shoulder": "lclavicle",
    "left_elbow": "lhumerus",
    "left_wrist": "lwrist",
    "right_shoulder": "rclavicle",
    "right_elbow": "rhumerus",
    "right_wrist": "rwrist",
}


def mm_per_unit(length_unit: float) -> float:
  """Millimetres per file unit for an ASF `:units length` value."""
  if length_unit <= 0:
    raise ValueError(f"ASF length unit must be positive, got {length_unit}")
  return MM_PER_INCH / length_unit


def to_z_up_mm(points: np.ndarray, scale: float = MM_PER_UNIT) -> np.ndarray:
  """`[..., 3]` Y-up file coordinates -> Z-up mm: `(x, -z, y) * scale`."""
  points = np.asarray(points, np.float64)
  return np.stack([points[..., 0], -points[..., 2], points[..., 1]],
                  axis=-1) * scale


def subsample_step(source_fps: float, target_fps: float = TARGET_FPS) -> int:
  """Keep-every-k step taking `source_fps` to `target_fps`.

  Raises:
    ValueError: the rates are not (within 1%) an integer ratio.
  """
  if source_fps <= 0 or target_fps <= 0:
    raise ValueError(f"Frame rates must be positive, got source {source_fps}"
                     f" and target {target_fps}")
  ratio = source_fps / target_fps
  step = int(round(ratio))
  if step < 1 or abs(ratio - step) > 0.01 * step:
    raise ValueError(f"Cannot subsample {source_fps:g} fps to {target_fps:g} "
                     "fps by keeping every k-th frame (ratio "
                     f"{ratio:.3f} is not an integer)")
  return step


def assemble_h36m17(joints: Mapping[str, np.ndarray]) -> np.ndarray:
  """Stacks named joints `[T, 3]` into `[T, 17, 3]` H36M-17 order.

  Args:
    joints: every H36M-17 joint name except "pelvis" -> `[T, 3]`; the pelvis
      is the midpoint of "left_hip" and "right_hip".
  Returns:
    `[T, 17, 3]` in the units of the inputs.
  """
  names = skeleton.H36M17.joint_names
  missing = [n for n in names if n != "pelvis" and n not in joints]
  if missing:
    raise ValueError(f"assemble_h36m17: missing joints {missing}")
  out = []
  for name in names:
    if name == "pelvis":
      out.append(0.5 * (np.asarray(joints["left_hip"]) +
                        np.asarray(joints["right_hip"])))
    else:
      out.append(np.asarray(joints[name]))
  return np.stack(out, axis=-2)
