"""Ray-cast human figures: capsule limbs, ellipsoid torso and head, Lambertian.

A figure is built from H36M-17 joints (world mm, Z up, see `xsup.skeleton`):
every limb bone becomes a capsule (a segment with a radius; hands and feet
are short capsules beyond the wrists and ankles), the torso is a chest and an
abdomen ellipsoid joined by capsules along the spine and across the shoulders
and hips, and the head is an ellipsoid with a hair cap and a small nose that
show which way the face points. Rays are intersected analytically (numpy):
each primitive is tested against all sub-pixels of its projected bounding box
at once and wins where it is nearer than the z-buffer. The winning surface's
colour is its part's albedo, modulated by a 3D texture (world frame, so
consistent between views), shaded with one directional light:
`albedo * (ambient + intensity * max(0, n . l))`, over a flat, gradient or
noise background, with optional pixel noise and super-sampling.

Cameras follow `xsup.geometry.camera`: `x_cam = rot @ x_world + trans`, looking
along +z with x right and y down. The renderer takes a general 3x3 intrinsic
matrix so that a crop can be rendered directly: compose the 2x3 crop affine
(image -> patch) with the camera intrinsics (`patch_intrinsics`). Pixel
`(row i, column j)` has its centre at image coordinates `(x=j, y=i)` (the
convention of `cv2.warpAffine` and of `xsup.geometry.camera.apply_affine`).
"""

import dataclasses
from typing import NamedTuple, Sequence, Tuple

import numpy as np

# Body parts; left and right limbs share a part (and a colour).
PART_NAMES = ("head", "hair", "neck", "torso", "pelvis", "upper_arm",
              "forearm", "hand", "thigh", "shin", "foot")
NUM_PARTS = len(PART_NAMES)
_P = {name: i for i, name in enumerate(PART_NAMES)}

BACKGROUNDS = ("flat", "gradient", "noise")


# H36M-17 joint indices used to build the figure.
_PELVIS, _RHIP, _RKNEE, _RANKLE, _LHIP, _LKNEE, _LANKLE = 0, 1, 2, 3, 4, 5, 6
_SPINE, _THORAX, _NOSE, _HEAD = 7, 8, 9, 10
_LSHO, _LELB, _LWRI, _RSHO, _RELB, _RWRI = 11, 12, 13, 14, 15, 16


@dataclasses.dataclass(frozen=True)
class FigureShape:
  """Body proportions of the figure (mm).

  Attributes:
    head_radii: head ellipsoid semi-axes (left-right, front-back, along the
      neck-nose -> head-top axis).
    head_center: head centre as a fraction of the way from the neck/nose
      joint (9) to the head joint (10).
    head_back: backward shift of the head centre from that axis (the
      neck/nose joint lies on the face).
    chest, abdomen: torso ellipsoid semi-axes (left-right, front-back); the
      vertical semi-axis is half the spine segment plus 0.6 x front-back.
    neck, spine, shoulders, pelvis, upper_arm, forearm, hand, thigh, shin,
      foot: capsule radii.
    hand_length, foot_length: length of the hand/foot capsules beyond the
      wrist/ankle.
  """
  head_radii: Tuple[float, float, float] = (76.0, 92.0, 102.0)
  head_center: float = 0.3
  head_back: float = 25.0
  neck: float = 48.0
  chest: Tuple[float, float] = (165.0, 112.0)
  abdomen: Tuple[float, float] = (145.0, 105.0)
  spine: float = 95.0
  shoulders: float = 62.0
  pelvis: float = 95.0
  upper_arm: float = 46.0
  forearm: float = 37.0
  hand: float = 38.0
  hand_length: float = 75.0
  thigh: float = 72.0
  shin: float = 50.0
  foot: float = 40.0
  foot_length: float = 135.0

  def scaled(self, girth: float) -> "FigureShape":
    """The same figure with every radius (not the lengths) times `girth`."""
    changes = {}
    for f in dataclasses.fields(self):
      if f.name in ("head_center", "head_back", "hand_length",
                    "foot_length"):
        continue
      v = getattr(self, f.name)
      changes[f.name] = (tuple(x * girth for x in v) if isinstance(v, tuple)
                         else v * girth)
    return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True, eq=False)
class Primitives:
  """Capsules and ellipsoids of one figure (world mm).

  Attributes:
    cap_a, cap_b: `[C, 3]` capsule segment end points.
    cap_r: `[C]` capsule radii.
    cap_part: `[C]` int part index into `PART_NAMES`.
    ell_center: `[E, 3]` ellipsoid centres.
    ell_axes: `[E, 3, 3]` orthonormal ellipsoid axes as columns.
    ell_radii: `[E, 3]` semi-axis lengths along those columns.
    ell_part: `[E]` int part index.
  """
  cap_a: np.ndarray
  cap_b: np.ndarray
  cap_r: np.ndarray
  cap_part: np.ndarray
  ell_center: np.ndarray = dataclasses.field(
      default_factory=lambda: np.zeros((0, 3)))
  ell_axes: np.ndarray = dataclasses.field(
      default_factory=lambda: np.zeros((0, 3, 3)))
  ell_radii: np.ndarray = dataclasses.field(
      default_factory=lambda: np.zeros((0, 3)))
  ell_part: np.ndarray = dataclasses.field(
      default_factory=lambda: np.zeros((0,), np.int64))


@dataclasses.dataclass(frozen=True, eq=False)
class Background:
  """What is behind the figure (drawn in output-pixel space).

  Attributes:
    kind: one of `BACKGROUNDS`: "flat" (first colour), "gradient" (first to
      second colour along `angle_deg`), "noise" (smooth value noise mixing
      the two colours, `cells` coarse cells per side plus a finer octave).
    colors: `[2, 3]` RGB in [0, 1].
    angle_deg: gradient direction in the image (0 = left to right, 90 = top
      to bottom).
    cells: coarse grid size of the noise.
    seed: seed of the noise.
  """
  kind: str = "flat"
  colors: np.ndarray = dataclasses.field(
      default_factory=lambda: np.zeros((2, 3)))
  angle_deg: float = 90.0
  cells: int = 6
  seed: int = 0


@dataclasses.dataclass(frozen=True, eq=False)
class Appearance:
  """How a figure and its background look.

  Attributes:
    part_colors: `[NUM_PARTS, 3]` albedo per part in [0, 1].
    texture_amplitude: relative albedo modulation of the 3D texture.
    texture_waves: `[K, 3]` angular wave vectors of the texture (rad / mm,
      world frame); the texture is the mean of `sin(w . x + phase)`.
    texture_phases: `[K]` phases (rad).
    background: the `Background`.
    light_dir: `[3]` unit vector towards the light (world frame).
    light_intensity: diffuse strength.
    ambient: ambient term.
    image_noise_std: std of Gaussian pixel noise added to the whole image
      (uint8 units).
    noise_seed: seed of that pixel noise.
  """
  part_colors: np.ndarray
  texture_amplitude: float = 0.0
  texture_waves: np.ndarray = dataclasses.field(
      default_factory=lambda: np.zeros((0, 3)))
  texture_phases: np.ndarray = dataclasses.field(
      default_factory=lambda: np.zeros((0,)))
  background: Background = Background()
  light_dir: np.ndarray = dataclasses.field(
      default_factory=lambda: np.array([0.0, 0.0, 1.0]))
  light_intensity: float = 0.7
  ambient: float = 0.3
  image_noise_std: float = 0.0
  noise_seed: int = 0


class Rendering(NamedTuple):
  """Output of `render`.

  Attributes:
    image: `[H, W, 3]` uint8 RGB.
    mask: `[H, W]` bool, True where the figure covers the pixel (more than
      half of the sub-samples with super-sampling).
    depth: `[H, W]` float32 camera-frame z (mm) of the nearest surface,
      `inf` where the figure does not cover the pixel.
  """
  image: np.ndarray
  mask: np.ndarray
  depth: np.ndarray


def intrinsics_matrix(focal: Sequence[float], center: Sequence[float]
                      ) -> np.ndarray:
  """`[3, 3]` pinhole matrix from focal `(fx, fy)` and centre `(cx, cy)`."""
  fx, fy = (float(v) for v in focal)
  cx, cy = (float(v) for v in center)
  return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def patch_intrinsics(affine: np.ndarray, focal: Sequence[float],
                     center: Sequence[float]) -> np.ndarray:
  """`[3, 3]` intrinsics of a crop: the 2x3 image->patch affine after K.

  A camera point `x` projects to patch pixels `(K' x)[:2] / (K' x)[2]` with
  `K' = [affine; 0 0 1] @ K`, so rendering with `K'` renders the patch.
  """
  affine = np.asarray(affine, np.float64)
  if affine.shape != (2, 3):
    raise ValueError(f"patch_intrinsics: affine must be [2, 3], got "
                     f"{affine.shape}")
  a3 = np.concatenate([affine, [[0.0, 0.0, 1.0]]], axis=0)
  return a3 @ intrinsics_matrix(focal, center)


def _unit(v: np.ndarray, fallback: np.ndarray) -> np.ndarray:
  n = np.linalg.norm(v)
  return v / n if n > 1e-6 else np.asarray(fallback, np.float64)


def figure_primitives(joints: np.ndarray,
                      shape: FigureShape = FigureShape()) -> Primitives:
  """Capsules and ellipsoids of a figure standing in H36M-17 `joints`.

  Args:
    joints: `[17, 3]` world mm (Z up), H36M-17 order.
    shape: body proportions.
  Returns:
    The figure's `Primitives` (world mm).
  """
  j = np.asarray(joints, np.float64)
  if j.shape != (17, 3):
    raise ValueError(f"figure_primitives: joints must be [17, 3] H36M-17 "
                     f"(world mm), got {j.shape}")
  caps = []  # (a, b, radius, part)

  def cap(a, b, r, part):
    caps.append((a, b, r, _P[part]))

  # Body frame: up along the spine, left across the hips and shoulders,
  # forward = left x up (a right-handed person facing `forward`).
  up = _unit(j[_THORAX] - j[_PELVIS], [0.0, 0.0, 1.0])
  left = (j[_LHIP] - j[_RHIP]) + (j[_LSHO] - j[_RSHO])
  left = _unit(left - np.dot(left, up) * up, np.cross(up, [1.0, 0.0, 0.0]))
  forward = np.cross(left, up)

  ells = []  # (centre, axes [3, 3] columns, radii [3], part)

  def ell(center, up_dir, left_hint, radii, part):
    u = _unit(up_dir, up)
    lat = _unit(left_hint - np.dot(left_hint, u) * u, left)
    ells.append((center, np.stack([lat, np.cross(lat, u), u], axis=1),
                 np.asarray(radii, np.float64), _P[part]))

  # Torso: chest and abdomen ellipsoids along the spine, filled and joined
  # by capsules through the spine, across the shoulders and across the hips.
  for bottom, top, (lat, fb), side in (
      (j[_SPINE], j[_THORAX], shape.chest, j[_LSHO] - j[_RSHO]),
      (j[_PELVIS], j[_SPINE], shape.abdomen, j[_LHIP] - j[_RHIP])):
    half = 0.5 * np.linalg.norm(top - bottom)
    ell(0.5 * (bottom + top), top - bottom, side,
        (lat, fb, half + 0.6 * fb), "torso")
  cap(j[_PELVIS], j[_SPINE], shape.spine, "torso")
  cap(j[_SPINE], j[_THORAX], shape.spine, "torso")
  cap(j[_LSHO], j[_RSHO], shape.shoulders, "torso")
  cap(j[_LHIP], j[_RHIP], shape.pelvis, "pelvis")
  cap(j[_THORAX], j[_NOSE], shape.neck, "neck")
  # Limbs.
  for sho, elb, wri in ((_LSHO, _LELB, _LWRI), (_RSHO, _RELB, _RWRI)):
    cap(j[sho], j[elb], shape.upper_arm, "upper_arm")
    cap(j[elb], j[wri], shape.forearm, "forearm")
    hand_dir = _unit(j[wri] - j[elb], -up)
    cap(j[wri], j[wri] + shape.hand_length * hand_dir, shape.hand, "hand")
  for hip, kne, ank in ((_LHIP, _LKNEE, _LANKLE), (_RHIP, _RKNEE, _RANKLE)):
    cap(j[hip], j[kne], shape.thigh, "thigh")
    cap(j[kne], j[ank], shape.shin, "shin")
    shin = _unit(j[ank] - j[kne], -up)
    foot_dir = _unit(forward - np.dot(forward, shin) * shin, forward)
    toe = j[ank] + shape.foot_length * foot_dir + 0.25 * shape.foot * shin
    cap(j[ank] - 0.3 * shape.foot_length * foot_dir, toe, shape.foot, "foot")

  # Head: ellipsoid along the neck/nose -> head axis, a hair cap shifted up
  # and back, and a nose in front.
  rad = np.asarray(shape.head_radii, np.float64)
  head_len = np.linalg.norm(j[_HEAD] - j[_NOSE])
  # Long heads (long neck/nose -> head bones) grow so the head joint stays
  # inside.
  rad[2] = max(rad[2], (1.0 - shape.head_center) * head_len + 15.0)
  head_up = _unit(j[_HEAD] - j[_NOSE], up)
  center = j[_NOSE] + shape.head_center * (j[_HEAD] - j[_NOSE])
  ell(center, head_up, left, rad, "head")
  head_fwd = ells[-1][1][:, 1]
  center = center - shape.head_back * head_fwd
  ells[-1] = (center,) + ells[-1][1:]
  ell(center + 0.12 * rad[2] * head_up - 0.10 * rad[1] * head_fwd, head_up,
      left, rad * np.array([1.03, 1.0, 0.95]), "hair")
  nose = center + 0.93 * rad[1] * head_fwd - 0.1 * rad[2] * head_up
  cap(nose, nose, 0.2 * rad[0], "head")

  a, b, r, part = zip(*caps)
  ec, ea, er, ep = zip(*ells)
  return Primitives(
      cap_a=np.stack(a), cap_b=np.stack(b), cap_r=np.asarray(r, np.float64),
      cap_part=np.asarray(part, np.int64), ell_center=np.stack(ec),
      ell_axes=np.stack(ea), ell_radii=np.stack(er),
      ell_part=np.asarray(ep, np.int64))


def _pixel_rays(intrinsics: np.ndarray, width: int, height: int,
                supersample: int) -> np.ndarray:
  """Unit ray directions `[H * s, W * s, 3]` (camera frame) of sub-pixels."""
  s = supersample
  offsets = (np.arange(s) + 0.5) / s - 0.5
  xs = (np.arange(width)[:, None] + offsets[None, :]).reshape(-1)
  ys = (np.arange(height)[:, None] + offsets[None, :]).reshape(-1)
  px = np.stack(np.broadcast_arrays(xs[None, :], ys[:, None],
                                    np.ones((1, 1))), axis=-1)
  d = px @ np.linalg.inv(intrinsics).T
  return d / np.linalg.norm(d, axis=-1, keepdims=True)


def _sphere_hits(d: np.ndarray, c: np.ndarray, r: np.ndarray) -> np.ndarray:
  """Ray (origin 0, unit `d` [P, 3]) vs spheres (`c` [N, 3], `r` [N]).

  Returns `[P, N]` distance of the first hit in front of the origin, inf
  where none.
  """
  b = d @ c.T                      # t at the closest approach
  h = b * b - (np.sum(c * c, -1) - r * r)
  t = b - np.sqrt(np.maximum(h, 0.0))
  return np.where((h >= 0.0) & (t > 0.0), t, np.inf)


def _capsule_hits(d: np.ndarray, a: np.ndarray, b: np.ndarray,
                  r: np.ndarray) -> np.ndarray:
  """`[P, C]` first-hit distances of unit rays from the origin vs capsules.

  A capsule is the union of a finite cylinder and two end spheres, so its
  first hit is the nearest of the three first hits.
  """
  ba = b - a
  baba = np.sum(ba * ba, -1)
  bard = d @ ba.T                  # [P, C]
  baoa = -np.sum(ba * a, -1)       # ba . (origin - a)
  rdoa = -(d @ a.T)                # d . (origin - a)
  oaoa = np.sum(a * a, -1)
  qa = baba - bard * bard
  qb = baba * rdoa - baoa * bard
  qc = baba * oaoa - baoa * baoa - r * r * baba
  h = qb * qb - qa * qc
  ok = (qa > 1e-9 * np.maximum(baba, 1e-12)) & (h >= 0.0)
  t_cyl = (-qb - np.sqrt(np.maximum(h, 0.0))) / np.where(ok, qa, 1.0)
  y = baoa + t_cyl * bard
  ok &= (y >= 0.0) & (y <= baba) & (t_cyl > 0.0)
  t = np.where(ok, t_cyl, np.inf)
  t = np.minimum(t, _sphere_hits(d, a, r))
  return np.minimum(t, _sphere_hits(d, b, r))


def _ellipsoid_hits(d: np.ndarray, center: np.ndarray, axes: np.ndarray,
                    radii: np.ndarray) -> np.ndarray:
  """`[P, E]` first-hit distances of unit rays from the origin vs ellipsoids.

  Ellipsoids (camera frame): centres `[E, 3]`, axes `[E, 3, 3]` (columns),
  semi-axes `[E, 3]`; the ray is intersected in each unit-sphere frame.
  """
  o_loc = -np.einsum("eij,ei->ej", axes, center) / radii
  d_loc = np.einsum("pi,eij->pej", d, axes) / radii
  qa = np.sum(d_loc * d_loc, -1)
  qb = np.einsum("pej,ej->pe", d_loc, o_loc)
  qc = np.sum(o_loc * o_loc, -1) - 1.0
  h = qb * qb - qa * qc
  t = (-qb - np.sqrt(np.maximum(h, 0.0))) / qa
  return np.where((h >= 0.0) & (t > 0.0), t, np.inf)


def _project_boxes(lo: np.ndarray, hi: np.ndarray, intrinsics: np.ndarray
                   ) -> Tuple[np.ndarray, np.ndarray]:
  """Pixel bounding boxes `[N, 2]` min/max of camera-frame boxes `[N, 3]`.

  Projects the 8 corners; perspective maps a box in front of the camera into
  the convex hull of its projected corners. Boxes reaching behind the camera
  get an unbounded box.
  """
  corners = np.stack(np.meshgrid([0, 1], [0, 1], [0, 1], indexing="ij"),
                     -1).reshape(8, 3)
  pts = np.where(corners[None] == 1, hi[:, None, :], lo[:, None, :])
  hom = pts @ intrinsics.T
  front = np.all(hom[..., 2] > 1e-6, axis=1)
  uv = hom[..., :2] / np.where(hom[..., 2:] > 1e-6, hom[..., 2:], 1.0)
  box_min = np.where(front[:, None], uv.min(axis=1), -np.inf)
  box_max = np.where(front[:, None], uv.max(axis=1), np.inf)
  return box_min, box_max


def _smooth_noise(rng: np.random.Generator, cells: int, height: int,
                  width: int) -> np.ndarray:
  """`[H, W]` smooth value noise in [0, 1]: a random grid, bilinear."""
  cells = max(int(cells), 1)
  grid = rng.random((cells + 1, cells + 1))
  y = np.linspace(0.0, cells, height, endpoint=False) + 0.5 * cells / height
  x = np.linspace(0.0, cells, width, endpoint=False) + 0.5 * cells / width
  y0 = np.minimum(np.floor(y).astype(int), cells - 1)
  x0 = np.minimum(np.floor(x).astype(int), cells - 1)
  fy = (y - y0)[:, None]
  fx = (x - x0)[None, :]
  fy = fy * fy * (3.0 - 2.0 * fy)
  fx = fx * fx * (3.0 - 2.0 * fx)
  g00 = grid[y0][:, x0]
  g01 = grid[y0][:, x0 + 1]
  g10 = grid[y0 + 1][:, x0]
  g11 = grid[y0 + 1][:, x0 + 1]
  return ((1 - fy) * ((1 - fx) * g00 + fx * g01)
          + fy * ((1 - fx) * g10 + fx * g11))


def render_background(background: Background, width: int, height: int
                      ) -> np.ndarray:
  """`[H, W, 3]` float RGB in [0, 1] of `background`."""
  c0, c1 = np.asarray(background.colors, np.float64).reshape(2, 3)
  kind = background.kind
  if kind == "flat":
    w = np.zeros((height, width))
  elif kind == "gradient":
    ang = np.deg2rad(background.angle_deg)
    yy, xx = np.mgrid[0:height, 0:width]
    proj = ((xx - 0.5 * (width - 1)) / width * np.cos(ang)
            + (yy - 0.5 * (height - 1)) / height * np.sin(ang))
    w = np.clip(proj + 0.5, 0.0, 1.0)
  elif kind == "noise":
    rng = np.random.default_rng(background.seed)
    w = 0.7 * _smooth_noise(rng, background.cells, height, width)
    w += 0.3 * _smooth_noise(rng, 4 * background.cells, height, width)
  else:
    raise ValueError(f"Background.kind must be one of {BACKGROUNDS}, got "
                     f"{kind!r}")
  return (1.0 - w)[..., None] * c0 + w[..., None] * c1


def render(primitives: Primitives, appearance: Appearance, rot: np.ndarray,
           trans: np.ndarray, intrinsics: np.ndarray, size: Tuple[int, int],
           *, supersample: int = 1) -> Rendering:
  """Renders `primitives` seen by one camera.

  Args:
    primitives: the figure (world mm).
    appearance: colours, texture, background and light.
    rot: `[3, 3]` world->camera rotation.
    trans: `[3]` world->camera translation (mm).
    intrinsics: `[3, 3]` matrix mapping camera points to homogeneous pixels
      (e.g. `patch_intrinsics(affine, focal, center)` for a crop).
    size: output `(width, height)` in pixels.
    supersample: sub-samples per pixel side (anti-aliasing).
  Returns:
    A `Rendering` (image, mask, depth).
  """
  width, height = (int(v) for v in size)
  s = int(supersample)
  if width <= 0 or height <= 0 or s <= 0:
    raise ValueError(f"render: size {size} and supersample {supersample} "
                     "must be positive")
  rot = np.asarray(rot, np.float64)
  trans = np.asarray(trans, np.float64)
  if rot.shape != (3, 3) or trans.shape != (3,):
    raise ValueError(f"render: rot must be [3, 3] and trans [3], got "
                     f"{rot.shape}, {trans.shape}")
  intrinsics = np.asarray(intrinsics, np.float64)
  if intrinsics.shape != (3, 3):
    raise ValueError(f"render: intrinsics must be [3, 3], got "
                     f"{intrinsics.shape}")

  d_grid = _pixel_rays(intrinsics, width, height, s)
  d = d_grid.reshape(-1, 3)

  def to_cam(x):
    return np.asarray(x, np.float64) @ rot.T + trans

  cap_a, cap_b = to_cam(primitives.cap_a), to_cam(primitives.cap_b)
  cap_r = np.asarray(primitives.cap_r, np.float64)
  ell_c = to_cam(primitives.ell_center).reshape(-1, 3)
  ell_ax = rot @ np.asarray(primitives.ell_axes, np.float64).reshape(-1, 3, 3)
  ell_rad = np.asarray(primitives.ell_radii, np.float64).reshape(-1, 3)
  num_caps = cap_a.shape[0]
  parts = np.concatenate([primitives.cap_part, primitives.ell_part]).astype(
      np.int64)

  # Image-space boxes of the primitives (from their camera-frame bounding
  # boxes), so that each is tested only against the pixels it can cover.
  lo = np.concatenate([np.minimum(cap_a, cap_b) - cap_r[:, None],
                       ell_c - np.sqrt(np.sum((ell_ax * ell_rad[:, None, :])**2,
                                              axis=-1))])
  hi = np.concatenate([np.maximum(cap_a, cap_b) + cap_r[:, None],
                       2.0 * ell_c - lo[num_caps:]])
  box_min, box_max = _project_boxes(lo, hi, intrinsics)

  # Z-buffer: each primitive is tested only against the sub-pixels of its
  # box, and wins where it is nearer than what is there.
  sub_h, sub_w = height * s, width * s
  zbuf = np.full((sub_h, sub_w), np.inf)
  owner = np.zeros((sub_h, sub_w), np.int64)
  j_lo = np.clip(np.ceil((box_min + 0.5) * s - 0.5), 0, None)
  j_hi = np.minimum(np.floor((box_max + 0.5) * s - 0.5),
                    np.array([sub_w - 1, sub_h - 1]))
  for k in range(lo.shape[0]):
    x0, y0 = int(j_lo[k, 0]), int(j_lo[k, 1])
    x1, y1 = int(j_hi[k, 0]) + 1, int(j_hi[k, 1]) + 1
    if x1 <= x0 or y1 <= y0:
      continue
    rays = d_grid[y0:y1, x0:x1].reshape(-1, 3)
    if k < num_caps:
      tk = _capsule_hits(rays, cap_a[k:k + 1], cap_b[k:k + 1],
                         cap_r[k:k + 1])
    else:
      e = k - num_caps
      tk = _ellipsoid_hits(rays, ell_c[e:e + 1], ell_ax[e:e + 1],
                           ell_rad[e:e + 1])
    tk = tk.reshape(y1 - y0, x1 - x0)
    zb = zbuf[y0:y1, x0:x1]
    nearer = tk < zb
    zb[nearer] = tk[nearer]
    owner[y0:y1, x0:x1][nearer] = k
  t = zbuf.reshape(-1)
  idx = owner.reshape(-1)
  hit = np.isfinite(t)

  # Normals of the winning primitive (camera frame).
  pts = d[hit] * t[hit, None]
  wid = idx[hit]
  is_cap = wid < num_caps
  ci = wid[is_cap]
  pa = pts[is_cap] - cap_a[ci]
  ba = cap_b[ci] - cap_a[ci]
  baba = np.maximum(np.sum(ba * ba, -1), 1e-12)
  u = np.clip(np.sum(pa * ba, -1) / baba, 0.0, 1.0)
  n_cap = pa - u[:, None] * ba
  ei = wid[~is_cap] - num_caps
  q = np.einsum("nij,ni->nj", ell_ax[ei], pts[~is_cap] - ell_c[ei])
  n_ell = np.einsum("nij,nj->ni", ell_ax[ei], q / ell_rad[ei]**2)
  n_hit = np.zeros_like(pts)
  n_hit[is_cap] = n_cap
  n_hit[~is_cap] = n_ell
  n_hit /= np.maximum(np.linalg.norm(n_hit, axis=-1, keepdims=True), 1e-12)

  # Albedo with a 3D texture (world frame, so it agrees between views).
  colors = np.asarray(appearance.part_colors, np.float64)
  if colors.shape != (NUM_PARTS, 3):
    raise ValueError(f"Appearance.part_colors must be [{NUM_PARTS}, 3] "
                     f"({PART_NAMES}), got {colors.shape}")
  albedo = colors[parts[wid]]
  waves = np.asarray(appearance.texture_waves, np.float64).reshape(-1, 3)
  if appearance.texture_amplitude and waves.shape[0]:
    pw = (pts - trans) @ rot   # camera -> world
    tex = np.mean(np.sin(pw @ waves.T + np.asarray(
        appearance.texture_phases, np.float64)), axis=-1)
    albedo = albedo * (1.0 + appearance.texture_amplitude * tex)[:, None]
  light = rot @ np.asarray(appearance.light_dir, np.float64)
  light /= max(np.linalg.norm(light), 1e-12)
  lambert = np.maximum(n_hit @ light, 0.0)
  shade = appearance.ambient + appearance.light_intensity * lambert

  bg = render_background(appearance.background, width, height)
  bg = np.repeat(np.repeat(bg, s, axis=0), s, axis=1).reshape(-1, 3)
  rgb = bg.copy()
  rgb[hit] = albedo * shade[:, None]

  def pool(x):
    x = x.reshape(height, s, width, s, *x.shape[1:])
    return x.mean(axis=(1, 3))

  image = pool(rgb.reshape(sub_h * sub_w, 3)) * 255.0
  if appearance.image_noise_std > 0:
    rng = np.random.default_rng(appearance.noise_seed)
    image = image + rng.normal(0.0, appearance.image_noise_std, image.shape)
  image = np.clip(np.round(image), 0, 255).astype(np.uint8)
  coverage = pool(hit.astype(np.float64))
  mask = coverage >= 0.5
  z = np.where(hit, t * d[:, 2], np.inf).reshape(height, s, width, s)
  depth = z.min(axis=(1, 3)).astype(np.float32)
  return Rendering(image=image, mask=mask, depth=depth)


def render_figure(joints: np.ndarray, rot: np.ndarray, trans: np.ndarray,
                  intrinsics: np.ndarray, size: Tuple[int, int],
                  appearance: Appearance,
                  shape: FigureShape = FigureShape(), *,
                  supersample: int = 1) -> Rendering:
  """Renders the figure of H36M-17 `joints` (`[17, 3]` world mm, Z up).

  See `render` for the camera arguments; `shape` sets the body proportions.
  """
  return render(figure_primitives(joints, shape), appearance, rot, trans,
                intrinsics, size, supersample=supersample)


# ---------------------------------------------------------------------------
# Random appearances.


@dataclasses.dataclass(frozen=True)
class AppearanceStyle:
  """Ranges from which `sample_appearance` draws an `Appearance`.

  Every `(lo, hi)` pair is sampled uniformly. Colours are drawn in HSV.

  Attributes:
    palette: "parts" gives every part an independent colour; "clothing"
      gives skin (head, neck, hands, bare forearms), hair, a top (torso,
      arms), trousers (pelvis, legs) and shoes.
    saturation, value: HSV ranges of the part (or clothing) colours.
    texture_amplitude: relative albedo modulation.
    texture_wavelength_mm: wavelength range of the texture waves.
    texture_waves: number of texture waves.
    backgrounds: background kinds to choose from (uniformly).
    background_saturation, background_value: HSV ranges of background colours.
    background_cells: range of the coarse noise grid size.
    light_elevation_deg: elevation of the light above the horizon (world);
      its azimuth is uniform.
    light_intensity, ambient: shading ranges.
    image_noise_std: pixel noise range (uint8 units).
  """
  palette: str = "parts"
  saturation: Tuple[float, float] = (0.6, 1.0)
  value: Tuple[float, float] = (0.5, 1.0)
  texture_amplitude: Tuple[float, float] = (0.0, 0.1)
  texture_wavelength_mm: Tuple[float, float] = (40.0, 250.0)
  texture_waves: int = 6
  backgrounds: Tuple[str, ...] = ("flat", "gradient")
  background_saturation: Tuple[float, float] = (0.0, 1.0)
  background_value: Tuple[float, float] = (0.0, 1.0)
  background_cells: Tuple[int, int] = (3, 8)
  light_elevation_deg: Tuple[float, float] = (-20.0, 80.0)
  light_intensity: Tuple[float, float] = (0.5, 0.9)
  ambient: Tuple[float, float] = (0.2, 0.45)
  image_noise_std: Tuple[float, float] = (0.0, 0.0)


def _hsv_to_rgb(h, s, v) -> np.ndarray:
  """HSV in [0, 1] (broadcast) -> `[..., 3]` RGB in [0, 1]."""
  h, s, v = np.broadcast_arrays(*(np.asarray(x, np.float64) for x in (h, s, v)))
  k = np.stack([5.0, 3.0, 1.0], -1)
  kk = (k + h[..., None] * 6.0) % 6.0
  return v[..., None] - v[..., None] * s[..., None] * np.clip(
      np.minimum(kk, 4.0 - kk), 0.0, 1.0)


def sample_appearance(rng: np.random.Generator, style: AppearanceStyle
                      ) -> Appearance:
  """Draws a random `Appearance` from the ranges of `style`."""
  def uni(r):
    return float(rng.uniform(r[0], r[1]))

  def color(sat=None, val=None):
    return _hsv_to_rgb(rng.random(), uni(sat or style.saturation),
                       uni(val or style.value))

  if style.palette == "parts":
    colors = np.stack([color() for _ in range(NUM_PARTS)])
  elif style.palette == "clothing":
    skin = _hsv_to_rgb(rng.uniform(0.02, 0.09), rng.uniform(0.25, 0.6),
                       rng.uniform(0.3, 0.95))
    hair = _hsv_to_rgb(rng.uniform(0.02, 0.12), rng.uniform(0.2, 0.7),
                       rng.uniform(0.05, 0.5))
    top, bottom, shoes = color(), color(), color(val=(0.05, 0.5))
    colors = np.zeros((NUM_PARTS, 3))
    for name, c in (("head", skin), ("hair", hair), ("neck", skin),
                    ("torso", top), ("pelvis", bottom), ("upper_arm", top),
                    ("forearm", top if rng.random() < 0.6 else skin),
                    ("hand", skin), ("thigh", bottom),
                    ("shin", bottom if rng.random() < 0.8 else skin),
                    ("foot", shoes)):
      colors[_P[name]] = c
  else:
    raise ValueError(f"AppearanceStyle.palette must be 'parts' or 'clothing',"
                     f" got {style.palette!r}")

  k = int(style.texture_waves)
  dirs = rng.normal(size=(k, 3))
  dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
  wavelength = rng.uniform(*style.texture_wavelength_mm, size=(k, 1))
  elev = np.deg2rad(uni(style.light_elevation_deg))
  azim = rng.uniform(0.0, 2.0 * np.pi)
  light = np.array([np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim),
                    np.sin(elev)])
  return Appearance(
      part_colors=colors,
      texture_amplitude=uni(style.texture_amplitude),
      texture_waves=dirs * (2.0 * np.pi / wavelength),
      texture_phases=rng.uniform(0.0, 2.0 * np.pi, size=k),
      background=sample_background(rng, style),
      light_dir=light,
      light_intensity=uni(style.light_intensity),
      ambient=uni(style.ambient),
      image_noise_std=uni(style.image_noise_std),
      noise_seed=int(rng.integers(2**31 - 1)))


def sample_background(rng: np.random.Generator, style: AppearanceStyle
                      ) -> Background:
  """Draws a random `Background` from the ranges of `style`."""
  kind = style.backgrounds[int(rng.integers(len(style.backgrounds)))]
  if kind not in BACKGROUNDS:
    raise ValueError(f"AppearanceStyle.backgrounds: unknown {kind!r}; "
                     f"known {BACKGROUNDS}")
  colors = np.stack([
      _hsv_to_rgb(rng.random(),
                  rng.uniform(*style.background_saturation),
                  rng.uniform(*style.background_value)) for _ in range(2)])
  return Background(
      kind=kind, colors=colors, angle_deg=float(rng.uniform(0.0, 360.0)),
      cells=int(rng.integers(style.background_cells[0],
                             style.background_cells[1] + 1)),
      seed=int(rng.integers(2**31 - 1)))
