"""Plots: 3D skeletons, 2D overlays and training curves (matplotlib)."""

import json
from typing import Dict, List, Optional, Sequence

import matplotlib
import numpy as np

from xsup import skeleton as skeleton_lib

_SIDE_COLOURS = {"left": "tab:blue", "right": "tab:red", "centre": "0.3"}


def _bone_colour(skel: skeleton_lib.Skeleton, child: int) -> str:
  name = skel.joint_names[child]
  side = ("left" if name.startswith("left_") else
          "right" if name.startswith("right_") else "centre")
  return _SIDE_COLOURS[side]


def plot_skeleton_3d(ax, joints: np.ndarray,
                     skel: skeleton_lib.Skeleton = skeleton_lib.H36M17,
                     style: str = "-", camera_frame: bool = True,
                     label: Optional[str] = None, alpha: float = 1.0) -> None:
  """Draws `[J, 3]` joints on a matplotlib 3D axis (left blue, right red).

  With `camera_frame`, camera coordinates (x right, y down, z forward) are
  shown with the image's up pointing up.
  """
  pts = np.asarray(joints, np.float64)
  if camera_frame:
    pts = np.stack([pts[:, 0], pts[:, 2], -pts[:, 1]], axis=-1)
  for i, (c, p) in enumerate(skel.bones):
    ax.plot(*zip(pts[p], pts[c]), style, color=_bone_colour(skel, c),
            alpha=alpha, label=label if i == 0 else None)
  centre = pts.mean(0)
  radius = np.abs(pts - centre).max()
  for axis, mid in zip("xyz", centre):
    getattr(ax, f"set_{axis}lim")(mid - radius, mid + radius)


def plot_skeleton_2d(ax, joints: np.ndarray,
                     skel: skeleton_lib.Skeleton = skeleton_lib.H36M17,
                     style: str = "-o", markersize: float = 2.0) -> None:
  """Draws `[J, 2]` pixel joints over an image axis."""
  pts = np.asarray(joints)
  for c, p in skel.bones:
    ax.plot(*zip(pts[p], pts[c]), style, color=_bone_colour(skel, c),
            markersize=markersize)


def read_metrics(workdir: str) -> List[Dict[str, float]]:
  """Rows of `<workdir>/metrics.jsonl`."""
  with open(f"{workdir}/metrics.jsonl") as f:
    return [json.loads(line) for line in f if line.strip()]


def plot_curves(ax, rows: Sequence[Dict[str, float]],
                keys: Sequence[str]) -> None:
  """Plots each key of `metrics.jsonl` rows against the step."""
  for key in keys:
    steps = [r["step"] for r in rows if key in r]
    values = [r[key] for r in rows if key in r]
    if steps:
      ax.plot(steps, values, label=key)
  ax.set_xlabel("step")
  ax.legend()


def use_headless_backend() -> None:
  """Selects a non-interactive backend (for scripts and tests)."""
  matplotlib.use("Agg")
