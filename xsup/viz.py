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


# Inference results (xsup.predict) -------------------------------------------


def prediction_figure(image: Optional[np.ndarray], joints_2d: np.ndarray,
                      hypotheses_3d: Optional[np.ndarray] = None,
                      skel: skeleton_lib.Skeleton = skeleton_lib.H36M18,
                      title: Optional[str] = None,
                      labels: Optional[Sequence[str]] = None,
                      unit: str = "mm"):
  """A figure of one prediction: 2D overlay and, beside it, the 3D hypotheses.

  Built without pyplot (no global figure state); save it with `savefig`.

  Args:
    image: `[S, S, 3]` uint8 input patch, or None for keypoint input (the
      2D skeleton is then drawn alone, image axes: y down, equal aspect).
    joints_2d: `[J, 2]` patch pixels (e.g. the most confident hypothesis),
      or the 2D keypoints in any unit when `image` is None.
    hypotheses_3d: `[H, J, 3]` camera-frame joints (mm), hypothesis 0 drawn
      solid, the others dashed and lighter; None: overlay only.
    skel: joint layout.
    title: title of the overlay panel.
    labels: H legend entries (default "hypothesis k"), e.g. with scores.
    unit: length unit of `hypotheses_3d` for the axis labels.

  Returns:
    A `matplotlib.figure.Figure`.
  """
  import matplotlib.figure  # pylint: disable=g-import-not-at-top
  with_3d = hypotheses_3d is not None
  fig = matplotlib.figure.Figure(figsize=(8.0 if with_3d else 4.0, 4.0))
  ax = fig.add_subplot(1, 2 if with_3d else 1, 1)
  if image is not None:
    ax.imshow(np.asarray(image))
    plot_skeleton_2d(ax, joints_2d, skel)
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
  else:
    plot_skeleton_2d(ax, joints_2d, skel)
    ax.set_aspect("equal")
    ax.invert_yaxis()
  ax.set_axis_off()
  if title:
    ax.set_title(title, fontsize=9)
  if labels is not None and with_3d and len(labels) != len(hypotheses_3d):
    raise ValueError(f"prediction_figure: {len(labels)} labels for "
                     f"{len(hypotheses_3d)} hypotheses")
  if with_3d:
    hyps = np.asarray(hypotheses_3d, np.float64)
    ax3 = fig.add_subplot(1, 2, 2, projection="3d")
    for k in reversed(range(len(hyps))):
      plot_skeleton_3d(ax3, hyps[k], skel, style="-" if k == 0 else "--",
                       alpha=1.0 if k == 0 else 0.45,
                       label=f"hypothesis {k}" if labels is None else
                       labels[k])
    pts = np.stack([hyps[..., 0], hyps[..., 2], -hyps[..., 1]], -1)
    pts = pts.reshape(-1, 3)
    centre = (pts.max(0) + pts.min(0)) / 2
    radius = max(np.abs(pts - centre).max(), 1e-6)
    for axis, mid in zip("xyz", centre):
      getattr(ax3, f"set_{axis}lim")(mid - radius, mid + radius)
    ax3.set_xlabel(f"x ({unit})", fontsize=7)
    ax3.set_ylabel(f"depth ({unit})", fontsize=7)
    ax3.tick_params(labelsize=6)
    ax3.legend(fontsize=6, loc="upper left")
    ax3.set_title("3D hypotheses (camera frame)", fontsize=9)
  fig.tight_layout()
  return fig


def plot_hypothesis_spread(ax, joints_3d: np.ndarray, bins: int = 30,
                           root: Optional[int] = 0) -> np.ndarray:
  """Histogram of the per-joint depth spread across hypotheses.

  Args:
    ax: a 2D matplotlib axis.
    joints_3d: `[N, H, J, 3]` root-relative camera joints (mm).
    bins: histogram bins.
    root: joint left out (its relative depth is 0 in every hypothesis);
      None keeps all.

  Returns:
    `[N, J']` spread (max - min depth over the H hypotheses, mm).
  """
  depth = np.asarray(joints_3d, np.float64)[..., 2]
  spread = depth.max(axis=1) - depth.min(axis=1)
  if root is not None:
    spread = np.delete(spread, root, axis=-1)
  ax.hist(spread.reshape(-1), bins=bins, color="0.4")
  ax.set_xlabel("depth spread across hypotheses (mm)")
  ax.set_ylabel("joints")
  return spread


# Training summaries (TensorBoard images) ------------------------------------


def figure_to_array(fig) -> np.ndarray:
  """Renders a `matplotlib.figure.Figure` with Agg: uint8 `[H, W, 3]`.

  Works on figures built without pyplot (no global backend or figure state).
  """
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top
  canvas = backend_agg.FigureCanvasAgg(fig)
  canvas.draw()
  return np.array(canvas.buffer_rgba(), np.uint8)[..., :3]


def _bone_segments(joints: np.ndarray, skel: skeleton_lib.Skeleton
                   ) -> tuple[np.ndarray, List[str]]:
  """`[J, C]` joints -> (`[B, 2, C]` bone segments, colour of each bone)."""
  bones = np.asarray(skel.bones)
  segments = np.stack([joints[bones[:, 1]], joints[bones[:, 0]]], axis=1)
  return segments, [_bone_colour(skel, c) for c, _ in skel.bones]


def skeleton_overlay(image: np.ndarray, joints_2d: np.ndarray,
                     skel: skeleton_lib.Skeleton = skeleton_lib.H36M18,
                     scale: int = 4) -> np.ndarray:
  """The patch with predicted 2D skeletons drawn over it, at `scale` x.

  Args:
    image: `[S, S, 3]` uint8 patch.
    joints_2d: `[K, J, 2]` (or `[J, 2]`) patch pixels, pixel centres at
      integers; hypothesis 0 (the most confident) is drawn solid, the others
      faint.
    skel: joint layout.
    scale: output pixels per patch pixel.

  Returns:
    uint8 `[S * scale, S * scale, 3]`; patch pixel (u, v) covers output
    pixels [v * scale, (v + 1) * scale) x [u * scale, (u + 1) * scale).
  """
  from matplotlib import collections as mpl_collections  # pylint: disable=g-import-not-at-top
  from matplotlib import figure as mpl_figure  # pylint: disable=g-import-not-at-top
  image = np.asarray(image)
  joints = np.asarray(joints_2d, np.float64)
  if joints.ndim == 2:
    joints = joints[None]
  height, width = image.shape[:2]
  dpi = 100.0
  fig = mpl_figure.Figure(figsize=(width * scale / dpi, height * scale / dpi),
                          dpi=dpi)
  ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
  ax.imshow(image, interpolation="nearest")
  for k in reversed(range(len(joints))):
    segments, colours = _bone_segments(joints[k], skel)
    ax.add_collection(mpl_collections.LineCollection(
        segments, colors=colours, alpha=1.0 if k == 0 else 0.3,
        linewidths=1.5 if k == 0 else 1.0))
  ax.plot(joints[0, :, 0], joints[0, :, 1], "o", color="yellow",
          markersize=2.0)
  ax.set_xlim(-0.5, width - 0.5)
  ax.set_ylim(height - 0.5, -0.5)
  ax.set_axis_off()
  return figure_to_array(fig)


def masks_side_by_side(rendered: np.ndarray, reference: Optional[np.ndarray],
                       scale: int = 4, gap: int = 2) -> np.ndarray:
  """Grey images [rendered | reference | overlay] for mask reconstruction.

  Args:
    rendered: `[S, S]` or `[S, S, 1]` line mask in [0, 1].
    reference: the same shape in [0, 1] (e.g. the person mask / 255), or
      None (its panel and the overlay stay black).
    scale: output pixels per mask pixel.
    gap: white pixels between panels (before scaling).

  Returns:
    uint8 `[S * scale, (3 S + 2 gap) * scale, 3]`; the overlay shows the
    rendering in red and the reference in green (yellow where both).
  """
  rendered = np.clip(np.asarray(rendered, np.float64).reshape(
      np.shape(rendered)[:2]), 0.0, 1.0)
  ref = (np.zeros_like(rendered) if reference is None else
         np.clip(np.asarray(reference, np.float64).reshape(rendered.shape),
                 0.0, 1.0))
  grey = lambda m: np.repeat(m[..., None], 3, axis=-1)
  overlay = np.stack([rendered, ref, np.zeros_like(rendered)], -1)
  sep = np.ones((rendered.shape[0], gap, 3))
  panel = np.concatenate([grey(rendered), sep, grey(ref), sep, overlay],
                         axis=1)
  panel = np.repeat(np.repeat(panel, scale, axis=0), scale, axis=1)
  return np.round(panel * 255.0).astype(np.uint8)


def pose_3d_image(hypotheses: np.ndarray,
                  ground_truth: Optional[np.ndarray] = None,
                  skel: skeleton_lib.Skeleton = skeleton_lib.H36M18,
                  size_px: int = 256, title: Optional[str] = None
                  ) -> np.ndarray:
  """All 3D hypotheses (0 solid, others dashed) and the ground truth (black).

  Args:
    hypotheses: `[K, J, 3]` root-relative camera-frame joints (mm).
    ground_truth: `[J, 3]` the same frame, or None.
    skel: joint layout.
    size_px: output side in pixels.
    title: figure title.

  Returns:
    uint8 `[size_px, size_px, 3]`.
  """
  from matplotlib import figure as mpl_figure  # pylint: disable=g-import-not-at-top
  from mpl_toolkits.mplot3d import art3d  # pylint: disable=g-import-not-at-top
  # Camera axes (x right, y down, z forward) shown with the image's up up.
  view = lambda p: np.stack([p[..., 0], p[..., 2], -p[..., 1]], -1)
  hyps = view(np.asarray(hypotheses, np.float64))
  dpi = 100.0
  fig = mpl_figure.Figure(figsize=(size_px / dpi, size_px / dpi), dpi=dpi)
  ax = fig.add_axes((0.0, 0.0, 1.0, 0.94), projection="3d")
  for k in reversed(range(len(hyps))):
    segments, colours = _bone_segments(hyps[k], skel)
    ax.add_collection3d(art3d.Line3DCollection(
        segments, colors=colours, alpha=1.0 if k == 0 else 0.4,
        linestyles="solid" if k == 0 else "dashed"))
  pts = hyps.reshape(-1, 3)
  if ground_truth is not None:
    gt = view(np.asarray(ground_truth, np.float64))
    ax.add_collection3d(art3d.Line3DCollection(
        _bone_segments(gt, skel)[0], colors="k", linewidths=1.0))
    pts = np.concatenate([pts, gt])
  centre = (pts.max(0) + pts.min(0)) / 2
  radius = max(float(np.abs(pts - centre).max()), 1e-6)
  for axis, mid in zip("xyz", centre):
    getattr(ax, f"set_{axis}lim")(mid - radius, mid + radius)
  ax.tick_params(labelsize=5)
  if title:
    ax.set_title(title, fontsize=7)
  return figure_to_array(fig)


def depth_marginals_image(marginals: np.ndarray,
                          hypothesis_bins: Optional[np.ndarray] = None,
                          skel: skeleton_lib.Skeleton = skeleton_lib.H36M18,
                          size_px: int = 256) -> np.ndarray:
  """Per-joint depth distributions p(z) as a `[J, D]` heat image.

  Args:
    marginals: `[J, D]` p(z) per joint.
    hypothesis_bins: `[K, J]` depth bins of the hypotheses (marked, 0 as a
      white dot, the others as crosses), or None.
    skel: joint layout (row labels).
    size_px: output side in pixels.

  Returns:
    uint8 `[size_px, size_px, 3]`.
  """
  from matplotlib import figure as mpl_figure  # pylint: disable=g-import-not-at-top
  probs = np.asarray(marginals, np.float64)
  dpi = 100.0
  fig = mpl_figure.Figure(figsize=(size_px / dpi, size_px / dpi), dpi=dpi)
  ax = fig.add_axes((0.3, 0.12, 0.67, 0.83))
  ax.imshow(probs, aspect="auto", interpolation="nearest", cmap="viridis")
  if hypothesis_bins is not None:
    bins = np.asarray(hypothesis_bins, np.float64)
    rows = np.arange(probs.shape[0])
    for k in reversed(range(len(bins))):
      ax.plot(bins[k], rows, "o" if k == 0 else "x",
              color="white" if k == 0 else "red", markersize=2.0)
  ax.set_yticks(range(probs.shape[0]))
  ax.set_yticklabels(skel.joint_names[:probs.shape[0]], fontsize=4)
  ax.set_xlabel("depth bin", fontsize=5)
  ax.tick_params(axis="x", labelsize=5)
  ax.set_xlim(-0.5, probs.shape[1] - 0.5)
  return figure_to_array(fig)
