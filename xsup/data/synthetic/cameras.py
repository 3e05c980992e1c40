"""Virtual camera rigs like Human3.6M's, for synthetic and mocap data.

World frame: Z up, millimetres (as the CMU and H36M mocap data). Cameras use
the convention of `xsup.geometry.camera`: `x_cam = rot @ x_world + trans`,
looking along +z with x right and y down in the image.
"""

import dataclasses
from typing import Sequence, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class Intrinsics:
  """Pinhole intrinsics in pixels and the image size (width, height)."""
  focal: Tuple[float, float] = (1145.0, 1145.0)
  center: Tuple[float, float] = (512.0, 515.0)
  size: Tuple[int, int] = (1000, 1000)


H36M_LIKE = Intrinsics()


def look_at(eye: np.ndarray, target: np.ndarray,
            up: Sequence[float] = (0.0, 0.0, 1.0)
            ) -> Tuple[np.ndarray, np.ndarray]:
  """Extrinsics of a camera at `eye` looking at `target` (world mm, Z up).

  Returns:
    `(rot [3, 3], trans [3])` with `x_cam = rot @ x + trans`; the image's
    y axis points down (against `up`).
  """
  eye = np.asarray(eye, np.float64)
  forward = np.asarray(target, np.float64) - eye
  forward /= np.linalg.norm(forward)
  right = np.cross(forward, np.asarray(up, np.float64))
  if np.linalg.norm(right) < 1e-9:
    raise ValueError("look_at: viewing direction is parallel to `up`")
  right /= np.linalg.norm(right)
  down = np.cross(forward, right)
  rot = np.stack([right, down, forward], axis=0)
  trans = -rot @ eye
  return rot.astype(np.float32), trans.astype(np.float32)


def ring_rig(target: np.ndarray, azimuths_deg: Sequence[float] = (
    45.0, 135.0, 225.0, 315.0), distance: float = 5000.0,
             height: float = 1500.0) -> Tuple[np.ndarray, np.ndarray]:
  """Cameras on a horizontal circle around `target`, all looking at it.

  Args:
    target: `[3]` world point (mm) the cameras look at (e.g. mean pelvis).
    azimuths_deg: angles of the cameras about the vertical axis.
    distance: horizontal distance to `target` (mm).
    height: camera height above the ground plane z = 0 (mm).
  Returns:
    `(rot [V, 3, 3], trans [V, 3])`.
  """
  target = np.asarray(target, np.float64)
  rots, trans = [], []
  for az in azimuths_deg:
    a = np.deg2rad(az)
    eye = np.array([target[0] + distance * np.cos(a),
                    target[1] + distance * np.sin(a), height])
    r, t = look_at(eye, target)
    rots.append(r)
    trans.append(t)
  return np.stack(rots), np.stack(trans)
