"""Tests of the ray-cast figure renderer against analytic silhouettes."""

import numpy as np
import pytest

from xsup.data.synthetic import cameras
from xsup.data.synthetic import figure_renderer as fr
from xsup.data.synthetic import poses
from xsup.geometry import camera as camera_lib

F = 200.0
SIZE = 65          # odd: pixel (32, 32) sits on the optical axis
C = 32.0
EYE_ROT = np.eye(3)
ZERO_T = np.zeros(3)


def _flat(colors=None, **kwargs):
  """An unshaded appearance: pixel = albedo (ambient 1, no diffuse)."""
  if colors is None:
    colors = np.full((fr.NUM_PARTS, 3), 0.5)
  args = dict(part_colors=np.asarray(colors, np.float64), ambient=1.0,
              light_intensity=0.0)
  args.update(kwargs)
  return fr.Appearance(**args)


def _capsules(a, b, r, part=None):
  a = np.atleast_2d(np.asarray(a, np.float64))
  b = np.atleast_2d(np.asarray(b, np.float64))
  r = np.atleast_1d(np.asarray(r, np.float64))
  part = np.zeros(len(r), np.int64) if part is None else np.asarray(part)
  return fr.Primitives(cap_a=a, cap_b=b, cap_r=r, cap_part=part)


def _render(prims, app=None, size=SIZE, k=None, **kwargs):
  k = fr.intrinsics_matrix((F, F), (C, C)) if k is None else k
  return fr.render(prims, app or _flat(), EYE_ROT, ZERO_T, k, (size, size),
                   **kwargs)


def _pixel_dist():
  yy, xx = np.mgrid[0:SIZE, 0:SIZE]
  return np.hypot(xx - C, yy - C)


def test_capsule_head_on_is_a_disc_of_the_analytic_radius():
  z1, r = 2000.0, 100.0
  out = _render(_capsules([0, 0, z1], [0, 0, z1 + 400.0], r))
  # The near end sphere's silhouette: a cone of half-angle asin(r / z1).
  radius = F * r / np.sqrt(z1**2 - r**2)
  dist = _pixel_dist()
  clear = np.abs(dist - radius) > 0.05
  np.testing.assert_array_equal(out.mask[clear], (dist <= radius)[clear])
  assert out.depth[32, 32] == pytest.approx(z1 - r, abs=1e-3)
  assert np.all(np.isinf(out.depth[~out.mask]))


def test_capsule_side_on_is_a_rounded_band_of_the_analytic_size():
  z, r, half = 2000.0, 100.0, 150.0
  out = _render(_capsules([-half, 0, z], [half, 0, z], r))
  # Column through the axis: the cylinder's tangent rays.
  half_height = F * r / np.sqrt(z**2 - r**2)
  rows = np.nonzero(out.mask[:, 32])[0]
  assert (rows.max() - rows.min()) / 2 == pytest.approx(half_height, abs=1.0)
  # Row through the axis: tangents to the end spheres.
  ang = np.arctan2(half, z) + np.arcsin(r / np.hypot(half, z))
  cols = np.nonzero(out.mask[32])[0]
  assert (cols.max() - cols.min()) / 2 == pytest.approx(F * np.tan(ang),
                                                        abs=1.0)
  # Depth on the axis is the cylinder's front surface.
  assert out.depth[32, 32] == pytest.approx(z - r, abs=1e-3)


def test_nearer_primitive_wins_regardless_of_order():
  colors = np.zeros((fr.NUM_PARTS, 3))
  colors[0] = (1.0, 0.0, 0.0)
  colors[1] = (0.0, 0.0, 1.0)
  near = ([-50.0, 0, 1500.0], [-50.0, 0, 1500.0], 150.0, 0)
  far = ([80.0, 0, 2500.0], [80.0, 0, 2500.0], 300.0, 1)
  outs = []
  for order in ((near, far), (far, near)):
    a, b, r, p = zip(*order)
    outs.append(_render(_capsules(a, b, r, p), _flat(colors)))
  np.testing.assert_array_equal(outs[0].image, outs[1].image)
  np.testing.assert_array_equal(outs[0].depth, outs[1].depth)
  img, depth = outs[0].image, outs[0].depth
  # Pixel (row 32, col 30) is inside both discs: the near red sphere wins.
  assert tuple(img[32, 30]) == (255, 0, 0)
  assert depth[32, 30] < 1500.0
  # Far right of the axis only the far blue sphere is hit.
  assert tuple(img[32, 50]) == (0, 0, 255)
  assert depth[32, 50] > 2000.0


def test_lambertian_shading_is_brighter_facing_the_light():
  prims = _capsules([0, 0, 2000.0], [0, 0, 2000.0], 300.0)
  ambient, diffuse = 0.2, 0.6
  albedo = np.full((fr.NUM_PARTS, 3), 0.8)
  # Light towards the camera: the centre normal faces it.
  app = fr.Appearance(part_colors=albedo, ambient=ambient,
                      light_intensity=diffuse,
                      light_dir=np.array([0.0, 0.0, -1.0]))
  out = _render(prims, app)
  assert out.image[32, 32, 0] == pytest.approx(
      255 * 0.8 * (ambient + diffuse), abs=1.0)
  # Light from the camera's right (+x): the right half is brighter and the
  # left rim only gets the ambient term.
  app = fr.Appearance(part_colors=albedo, ambient=ambient,
                      light_intensity=diffuse,
                      light_dir=np.array([1.0, 0.0, 0.0]))
  out = _render(prims, app)
  lum = out.image[..., 0].astype(float)
  m = out.mask
  assert lum[:, 33:][m[:, 33:]].mean() > lum[:, :32][m[:, :32]].mean() + 40
  assert lum[32, 32] == pytest.approx(255 * 0.8 * ambient, abs=1.0)
  left = np.nonzero(m[32])[0].min()
  assert lum[32, left] == pytest.approx(255 * 0.8 * ambient, abs=1.0)
  right = np.nonzero(m[32])[0].max()
  assert lum[32, right] > 255 * 0.8 * (ambient + 0.5 * diffuse)


def test_patch_intrinsics_render_the_affine_crop():
  focal, center = (1145.0, 1145.0), (512.0, 515.0)
  point = np.array([[150.0, -220.0, 4000.0]])
  uv = camera_lib.project(point, np.array(focal), np.array(center))
  for rotation in (0.0, 30.0):
    affine = camera_lib.affine_transform(np.array([530.0, 470.0]), 300.0,
                                         64, rotation_deg=rotation)
    expected = np.asarray(camera_lib.apply_affine(uv, affine))[0]
    k = fr.patch_intrinsics(affine, focal, center)
    out = _render(_capsules(point, point, 80.0), size=64, k=k)
    ys, xs = np.nonzero(out.mask)
    assert xs.size > 20
    np.testing.assert_allclose([xs.mean(), ys.mean()], expected, atol=0.3)


def test_ellipsoid_silhouette_has_its_semi_axes():
  z = 3000.0
  radii = np.array([[150.0, 60.0, 80.0]])  # local x/y/z = camera x/y/z
  prims = fr.Primitives(
      cap_a=np.zeros((0, 3)), cap_b=np.zeros((0, 3)), cap_r=np.zeros(0),
      cap_part=np.zeros(0, np.int64), ell_center=np.array([[0, 0, z]]),
      ell_axes=np.eye(3)[None], ell_radii=radii,
      ell_part=np.zeros(1, np.int64))
  out = _render(prims)
  cols = np.nonzero(out.mask[32])[0]
  rows = np.nonzero(out.mask[:, 32])[0]
  # Small angles: the half-extents are about f * semi-axis / z.
  assert (cols.max() - cols.min()) / 2 == pytest.approx(F * 150 / z, abs=1.0)
  assert (rows.max() - rows.min()) / 2 == pytest.approx(F * 60 / z, abs=1.0)
  assert out.depth[32, 32] == pytest.approx(z - 80.0, abs=1e-3)


@pytest.fixture(scope="module")
def figure_views():
  rng = np.random.default_rng(3)
  joints = poses.sample_poses(rng, 2)
  app = fr.sample_appearance(rng, fr.AppearanceStyle(palette="clothing",
                                                     backgrounds=("noise",)))
  focal, center = np.array([1145.0, 1145.0]), np.array([512.0, 515.0])
  views = []
  for pose in joints:
    rot, trans = cameras.ring_rig(pose[0], distance=4500.0, height=1400.0)
    for v in range(0, 4, 2):
      cam = np.asarray(camera_lib.world_to_camera(pose, rot[v], trans[v]))
      uv = np.asarray(camera_lib.project(cam, focal, center))
      lo, hi = uv.min(0), uv.max(0)
      affine = camera_lib.affine_transform(0.5 * (lo + hi),
                                           1.3 * np.max(hi - lo), 96)
      out = fr.render_figure(pose, rot[v], trans[v],
                             fr.patch_intrinsics(affine, focal, center),
                             (96, 96), app)
      views.append((out, np.asarray(camera_lib.apply_affine(uv, affine))))
  return views


def test_mask_covers_the_projected_joints(figure_views):
  for out, joints_2d in figure_views:
    px = np.round(joints_2d).astype(int)
    assert np.all(out.mask[px[:, 1], px[:, 0]])
    assert 0.05 < out.mask.mean() < 0.6
    assert out.image.dtype == np.uint8 and out.image.shape == (96, 96, 3)
    assert np.all(np.isfinite(out.depth[out.mask]))


def test_figure_depth_lies_between_the_joint_depths(figure_views):
  del figure_views
  rng = np.random.default_rng(0)
  pose = poses.sample_poses(rng, 1)[0]
  rot, trans = cameras.ring_rig(pose[0])
  cam = np.asarray(camera_lib.world_to_camera(pose, rot[0], trans[0]))
  k = fr.intrinsics_matrix((150.0, 150.0), (32.0, 32.0))
  out = fr.render_figure(pose, rot[0], trans[0], k, (64, 64),
                         _flat(), supersample=2)
  d = out.depth[out.mask]
  assert d.min() > cam[:, 2].min() - 200.0
  assert d.max() < cam[:, 2].max() + 200.0


def test_backgrounds():
  colors = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
  flat = fr.render_background(fr.Background("flat", colors), 16, 8)
  np.testing.assert_allclose(flat, 0.0)
  grad = fr.render_background(fr.Background("gradient", colors,
                                            angle_deg=0.0), 16, 8)
  assert np.all(np.diff(grad[0, :, 0]) > 0)       # left -> right
  np.testing.assert_allclose(grad[:, 3], grad[0, 3][None].repeat(8, 0))
  noise = fr.render_background(fr.Background("noise", colors, seed=1), 32, 32)
  assert 0.0 <= noise.min() and noise.max() <= 1.0 and noise.std() > 0.02
  again = fr.render_background(fr.Background("noise", colors, seed=1), 32, 32)
  np.testing.assert_array_equal(noise, again)
  with pytest.raises(ValueError, match="Background.kind"):
    fr.render_background(fr.Background("plaid", colors), 4, 4)


def test_supersampling_smooths_edges_but_keeps_the_disc():
  prims = _capsules([0, 0, 2000.0], [0, 0, 2000.0], 100.0)
  radius = F * 100.0 / np.sqrt(2000.0**2 - 100.0**2)
  colors = np.ones((fr.NUM_PARTS, 3))
  out = _render(prims, _flat(colors), supersample=4)
  assert out.mask.sum() == pytest.approx(np.pi * radius**2, rel=0.05)
  values = np.unique(out.image[..., 0])
  assert len(values) > 3   # partial coverage gives intermediate values


def test_sample_appearance_and_bad_inputs():
  rng = np.random.default_rng(0)
  for palette in ("parts", "clothing"):
    app = fr.sample_appearance(rng, fr.AppearanceStyle(palette=palette))
    assert app.part_colors.shape == (fr.NUM_PARTS, 3)
    assert app.part_colors.min() >= 0.0 and app.part_colors.max() <= 1.0
    assert np.linalg.norm(app.light_dir) == pytest.approx(1.0)
  with pytest.raises(ValueError, match="palette"):
    fr.sample_appearance(rng, fr.AppearanceStyle(palette="plaid"))
  with pytest.raises(ValueError, match=r"\[17, 3\]"):
    fr.figure_primitives(np.zeros((18, 3)))
  with pytest.raises(ValueError, match="intrinsics"):
    fr.render(_capsules([0, 0, 1], [0, 0, 1], 1.0), _flat(), EYE_ROT, ZERO_T,
              np.eye(2), (4, 4))
  thin = fr.FigureShape().scaled(0.5)
  assert thin.thigh == pytest.approx(0.5 * fr.FigureShape().thigh)
  assert thin.foot_length == fr.FigureShape().foot_length
