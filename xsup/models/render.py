"""Differentiable skeleton line rendering (the X-as-Supervision "line mask").

Each link (a, b) of a skeleton is drawn as a soft line on a square grid: for
every pixel p the squared distance to the segment,

  d^2(p) = |p - (a + t (b - a))|^2,  t = clip(<p - a, b - a> / |b - a|^2, 0, 1),

is turned into a heat value exp(-d^2 / w), with w = body_width * 1e-3 in the
normalised units below (w is a squared length: body_width 3.0 gives a line
whose heat falls to 1/e at a distance sqrt(0.003) ~ 0.055, i.e. about 7 pixels
of a 256-pixel patch). The four arm links (upper and lower arm, both sides) use
half of w. The rendered mask is the maximum over links.

Coordinates: joints are normalised patch coordinates `(x, y)` in [-1, 1] with
x along the columns and y along the rows; pixel (row i, column j) of an S x S
grid sits at x = 2 j / (S - 1) - 1, y = 2 i / (S - 1) - 1 (corners at +-1).
Outputs are NHWC: `[B, S, S, 1]`, index `[b, row, column, 0]`. (The
integral detector normalises x as column / W * 2 - 1, this grid as
column / (W - 1) * 2 - 1; the two differ by less than a pixel, as published.)

Link set (H36M-18 layout, `xsup.skeleton.H36M18`, as the published model uses
it): the 17 (child, parent) bones of the kinematic tree (root excluded,
children 1..17 in order) followed by 8 extension links
(child, parent) = (1, 7), (4, 7), (11, 7), (14, 7), (2, 0), (5, 0), (14, 1),
(11, 4) that fill the torso and hips: 25 links in all. The thin arm links are
the bones (12, 11), (13, 12), (15, 14), (16, 15) (positions 11, 12, 14, 15 of
the list). The published renderer halves the arm width only when it draws at
least 21 links (i.e. with the extension links); `line_links(extension=False)`
with `arm_width_scale=0.5` therefore differs from it, pass
`arm_width_scale=1.0` to reproduce the 17-link variant.

Everything is pure `jax.numpy`, differentiable with respect to the joints
(the clamped projection gives a continuously differentiable d^2 for
non-degenerate links; a zero-length link falls back to the distance to its
point). Only one hypothesis is drawn: callers pass the x, y of hypothesis 0,
`joints[:, 0, :, :2]`.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from xsup import skeleton as skel

Array = jax.Array
Link = Tuple[int, int]

DEFAULT_BODY_WIDTH = 3.0
# The published body width is given in thousandths of a squared normalised
# length.
_WIDTH_UNIT = 1e-3

# Extension links of the published model, (child, parent) in H36M-18 indices:
# hips to torso, shoulders to torso, knees to pelvis, and the two crossed
# shoulder-hip diagonals.
EXTENSION_LINKS: Tuple[Link, ...] = ((1, 7), (4, 7), (11, 7), (14, 7),
                                     (2, 0), (5, 0), (14, 1), (11, 4))

# Upper and lower arm bones of both sides (H36M-18), drawn thinner.
ARM_LINKS: Tuple[Link, ...] = ((12, 11), (13, 12), (15, 14), (16, 15))


def line_links(extension: bool = True) -> Tuple[Link, ...]:
  """(child, parent) links drawn for H36M-18 joints.

  Args:
    extension: append the 8 extension links (25 links); otherwise only the
      17 tree bones.

  Returns:
    Tuple of (child, parent) index pairs.
  """
  links = tuple(skel.H36M18.bones)
  if extension:
    links = links + EXTENSION_LINKS
  return links


def link_width_scales(links: Sequence[Link],
                      arm_width_scale: float = 0.5) -> np.ndarray:
  """`[L]` float32 multipliers of the width w per link (arms get the scale)."""
  arms = {frozenset(l) for l in ARM_LINKS}
  return np.array([arm_width_scale if frozenset(l) in arms else 1.0
                   for l in links], np.float32)


def coordinate_grid(size: int, dtype=jnp.float32) -> Array:
  """`[S, S, 2]` (x, y) pixel positions in [-1, 1]; x varies along columns."""
  if size < 2:
    raise ValueError(f"render.py: grid size must be >= 2, got {size}.")
  ticks = 2.0 * jnp.arange(size, dtype=dtype) / (size - 1) - 1.0
  yy, xx = jnp.meshgrid(ticks, ticks, indexing="ij")
  return jnp.stack([xx, yy], axis=-1)


def segment_squared_distance(points: Array, start: Array, end: Array
                             ) -> Array:
  """Squared distance of points to segments (clamped projection).

  Args:
    points: `[P, 2]` query points.
    start: `[..., L, 2]` segment start points.
    end: `[..., L, 2]` segment end points.

  Returns:
    `[..., L, P]` squared distances.
  """
  # Written per component (no [..., L, P, 2] intermediate) so XLA can fuse
  # the whole expression into one elementwise kernel.
  dx = (end[..., 0] - start[..., 0])[..., None]             # [..., L, 1]
  dy = (end[..., 1] - start[..., 1])[..., None]
  length2 = dx * dx + dy * dy
  degenerate = length2 < 1e-12
  safe_length2 = jnp.where(degenerate, 1.0, length2)
  rx = points[:, 0] - start[..., 0][..., None]               # [..., L, P]
  ry = points[:, 1] - start[..., 1][..., None]
  t = jnp.clip((rx * dx + ry * dy) / safe_length2, 0.0, 1.0)
  t = jnp.where(degenerate, 0.0, t)
  ex = rx - t * dx
  ey = ry - t * dy
  return ex * ex + ey * ey


def _link_heat(joints_2d: Array, size: int, links: Sequence[Link] | None,
               body_width: float, arm_width_scale: float) -> Array:
  """`[B, L, S * S]` heat per link, pixels in row-major order."""
  if joints_2d.ndim != 3 or joints_2d.shape[-1] != 2:
    raise ValueError("render.py: joints_2d must be [B, J, 2] normalised "
                     f"(x, y); got shape {tuple(joints_2d.shape)}.")
  if links is None:
    links = line_links()
  links = tuple((int(c), int(p)) for c, p in links)
  if not links:
    raise ValueError("render.py: links is empty.")
  num_joints = joints_2d.shape[1]
  bad = [l for l in links if max(l) >= num_joints or min(l) < 0]
  if bad:
    raise ValueError(f"render.py: links {bad} index outside the {num_joints} "
                     "joints of joints_2d.")
  if body_width <= 0:
    raise ValueError(f"render.py: body_width must be > 0, got {body_width}.")
  child = np.array([c for c, _ in links])
  parent = np.array([p for _, p in links])
  grid = coordinate_grid(size, joints_2d.dtype).reshape(-1, 2)   # [P, 2]
  d2 = segment_squared_distance(grid, joints_2d[:, child],
                                joints_2d[:, parent])            # [B, L, P]
  width = body_width * _WIDTH_UNIT * link_width_scales(links, arm_width_scale)
  return jnp.exp(-d2 / jnp.asarray(width, joints_2d.dtype)[:, None])


def render_link_heatmaps(joints_2d: Array, size: int,
                         links: Sequence[Link] | None = None,
                         body_width: float = DEFAULT_BODY_WIDTH,
                         arm_width_scale: float = 0.5) -> Array:
  """Per-link soft line heatmaps.

  Args:
    joints_2d: `[B, J, 2]` normalised patch (x, y) in [-1, 1].
    size: grid size S (pixels per side).
    links: (child, parent) pairs; defaults to `line_links()` (25 links,
      needs H36M-18 joints).
    body_width: line width parameter; w = body_width * 1e-3.
    arm_width_scale: multiplier of w for the four arm links.

  Returns:
    `[B, S, S, L]` heat in [0, 1], exp(-d^2 / (w * scale)).
  """
  heat = _link_heat(joints_2d, size, links, body_width, arm_width_scale)
  heat = heat.reshape(heat.shape[0], heat.shape[1], size, size)
  return jnp.transpose(heat, (0, 2, 3, 1))


def render_skeleton(joints_2d: Array, size: int,
                    links: Sequence[Link] | None = None,
                    body_width: float = DEFAULT_BODY_WIDTH,
                    arm_width_scale: float = 0.5) -> Array:
  """Soft skeleton line mask: the maximum over links of the line heatmaps.

  Args:
    joints_2d: `[B, J, 2]` normalised patch (x, y) in [-1, 1] (hypothesis 0).
    size: grid size S.
    links: (child, parent) pairs; defaults to the 25 H36M-18 links.
    body_width: line width parameter; w = body_width * 1e-3.
    arm_width_scale: multiplier of w for the four arm links.

  Returns:
    `[B, S, S, 1]` mask in [0, 1], NHWC.
  """
  heat = _link_heat(joints_2d, size, links, body_width, arm_width_scale)
  mask = jnp.max(heat, axis=1)                                   # [B, P]
  return mask.reshape(heat.shape[0], size, size, 1)
