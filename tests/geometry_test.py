"""Geometry identities: SO(3), cameras, alignment, triangulation."""

import jax
import jax.numpy as jnp
from jax import test_util as jtu
import numpy as np
import pytest

from xsup.geometry import alignment
from xsup.geometry import camera
from xsup.geometry import rotations
from xsup.geometry import triangulation

KEY = jax.random.PRNGKey(0)


def test_rotation_about_z_by_90_degrees_maps_x_to_y():
  rot = rotations.rotation_about_axis(jnp.pi / 2, "z")
  np.testing.assert_allclose(rot @ jnp.array([1.0, 0.0, 0.0]),
                             [0.0, 1.0, 0.0], atol=1e-6)


def test_exp_log_round_trip_and_orthogonality():
  rot = rotations.random_rotation(KEY, (64,))
  eye = jnp.broadcast_to(jnp.eye(3), rot.shape)
  np.testing.assert_allclose(rot @ jnp.swapaxes(rot, -1, -2), eye, atol=1e-5)
  np.testing.assert_allclose(jnp.linalg.det(rot), 1.0, atol=1e-5)
  back = rotations.axis_angle_to_matrix(rotations.matrix_to_axis_angle(rot))
  np.testing.assert_allclose(back, rot, atol=1e-5)


def test_log_near_pi_and_identity():
  for angle in (1e-9, 1e-4, np.pi - 1e-4):
    v = jnp.array([0.0, angle, 0.0])
    np.testing.assert_allclose(
        rotations.matrix_to_axis_angle(rotations.axis_angle_to_matrix(v)), v,
        atol=1e-4)


def test_exp_map_gradients():
  jtu.check_grads(rotations.axis_angle_to_matrix, (jnp.array([0.3, -0.2,
                                                             0.5]),),
                  order=2, modes=("rev",), atol=1e-2, rtol=1e-2)
  # Finite at the identity.
  grad = jax.jacobian(rotations.axis_angle_to_matrix)(jnp.zeros(3))
  assert np.all(np.isfinite(grad))
  # d(R)/d(v_z) at 0 is skew(e_z).
  np.testing.assert_allclose(grad[..., 2], rotations.skew(jnp.array(
      [0.0, 0.0, 1.0])), atol=1e-6)


def test_random_rotation_about_axis_keeps_axis_and_respects_bound():
  rot = rotations.random_rotation_about_axis(KEY, (100,), "y",
                                             max_angle=np.pi / 4)
  np.testing.assert_allclose(rot[:, :, 1], np.tile([0.0, 1.0, 0.0], (100, 1)),
                             atol=1e-6)
  angles = jnp.linalg.norm(rotations.matrix_to_axis_angle(rot), axis=-1)
  assert float(angles.max()) <= np.pi / 4 + 1e-5
  bounded = rotations.random_rotation_bounded(KEY, (100,), max_angle=0.3)
  assert float(jnp.linalg.norm(rotations.matrix_to_axis_angle(bounded),
                               axis=-1).max()) <= 0.3 + 1e-5


def test_world_camera_round_trip_and_known_projection():
  rot = rotations.rotation_about_axis(0.4, "x")
  trans = jnp.array([10.0, -20.0, 3000.0])
  pts = jax.random.normal(KEY, (5, 17, 3)) * 500
  cam = camera.world_to_camera(pts, rot, trans)
  np.testing.assert_allclose(camera.camera_to_world(cam, rot, trans), pts,
                             atol=1e-2)
  # A point on the optical axis projects onto the principal point; one at
  # (z, 0, z) lands f pixels to the right.
  focal = jnp.array([1000.0, 1100.0])
  center = jnp.array([500.0, 400.0])
  uv = camera.project(jnp.array([[0.0, 0.0, 2.0], [2.0, 0.0, 2.0]]), focal,
                      center)
  np.testing.assert_allclose(uv, [[500.0, 400.0], [1500.0, 400.0]], atol=1e-4)
  depth = cam[..., 2]
  back = camera.backproject(camera.project(cam, focal, center), depth, focal,
                            center)
  np.testing.assert_allclose(back, cam, rtol=1e-4, atol=1e-2)


def test_distortion_matches_hand_formula():
  pt = jnp.array([[0.3, -0.2, 1.0]])
  k = jnp.array([0.1, 0.01, 0.001])
  p = jnp.array([0.002, -0.003])
  uv = np.array([0.3, -0.2])
  r2 = np.sum(uv**2)
  d = 1 + 0.1 * r2 + 0.01 * r2**2 + 0.001 * r2**3 + 0.002 * uv[0] - 0.003 * uv[1]
  expected = (uv * d + np.array([0.002, -0.003]) * r2) * 1000 + 500
  got = camera.project(pt, jnp.array([1000.0, 1000.0]),
                       jnp.array([500.0, 500.0]), k, p)
  np.testing.assert_allclose(got[0], expected, rtol=1e-5)


def test_extrinsics_from_pose():
  orientation = rotations.rotation_about_axis(0.7, "z")
  position = jnp.array([1.0, 2.0, 3.0])
  rot, trans = camera.extrinsics_from_pose(orientation, position)
  np.testing.assert_allclose(
      camera.world_to_camera(position[None], rot, trans), [[0.0, 0.0, 0.0]],
      atol=1e-6)


def test_affine_round_trip_and_centre():
  affine = camera.affine_transform(np.array([300.0, 200.0]), 400.0, 256,
                                   rotation_deg=30.0)
  pts = jnp.array([[300.0, 200.0], [10.0, 20.0]])
  patch = camera.apply_affine(pts, affine)
  np.testing.assert_allclose(patch[0], [128.0, 128.0], atol=1e-4)
  np.testing.assert_allclose(
      camera.apply_affine(patch, camera.invert_affine(affine)), pts, atol=1e-3)


def test_normalize_2d_lifting_scale():
  kp = np.random.default_rng(0).normal(size=(50, 17, 2)) * 100 + 500
  norm, scale = camera.normalize_2d_lifting(kp, np.array([1000.0, 1000.0]))
  np.testing.assert_allclose(norm[:, 0], 0.0, atol=1e-6)
  np.testing.assert_allclose(
      np.mean(np.linalg.norm(norm[:, 10] - norm[:, 0], axis=-1)), 0.2,
      rtol=1e-5)
  again, same = camera.normalize_2d_lifting(kp, np.array([1000.0, 1000.0]),
                                            scale=scale)
  assert same == scale
  np.testing.assert_allclose(again, norm)
  with pytest.raises(ValueError, match="degenerate"):
    camera.normalize_2d_lifting(np.zeros((3, 17, 2)), np.ones(2))


def test_unit_projection_inverse():
  xyz = jnp.array([[[0.2, -0.1, 0.5], [0.0, 0.3, -0.4]]])
  xy = camera.perspective_unit_projection(xyz)
  np.testing.assert_allclose(camera.lift_with_depth(xy, xyz[..., 2:]), xyz,
                             atol=1e-6)


def test_procrustes_of_rotated_scaled_copy_is_exact():
  pts = jax.random.normal(KEY, (4, 17, 3))
  rot = rotations.random_rotation(jax.random.PRNGKey(1), (4,))
  target = 3.0 * rotations.rotate(pts, rot) + jnp.array([1.0, -2.0, 0.5])
  np.testing.assert_allclose(alignment.procrustes_align(pts, target), target,
                             atol=1e-4)
  scale, r, _ = alignment.procrustes(pts, target)
  np.testing.assert_allclose(scale, 3.0, rtol=1e-4)
  np.testing.assert_allclose(r, rot, atol=1e-4)


def test_procrustes_never_reflects():
  pts = jax.random.normal(KEY, (17, 3))
  mirrored = pts * jnp.array([1.0, 1.0, -1.0])
  _, rot, _ = alignment.procrustes(pts, mirrored)
  np.testing.assert_allclose(jnp.linalg.det(rot), 1.0, atol=1e-5)
  err = jnp.abs(alignment.procrustes_align(pts, mirrored) - mirrored).max()
  assert float(err) > 1e-2  # A reflection cannot be undone by a rotation.


def test_scale_align_is_least_squares():
  pts = jax.random.normal(KEY, (17, 3))
  np.testing.assert_allclose(alignment.scale_align(pts, 2.5 * pts), 2.5 * pts,
                             rtol=1e-5)


def test_triangulation_recovers_points_and_ignores_zero_weight_outliers():
  pts = jax.random.normal(KEY, (17, 3)) * 300
  rots, transs, projs, uvs = [], [], [], []
  focal = jnp.array([1000.0, 1000.0])
  center = jnp.array([500.0, 500.0])
  for v, angle in enumerate((0.0, 1.2, 2.4, 3.6)):
    rot = rotations.rotation_about_axis(angle, "y")
    trans = jnp.array([0.0, 0.0, 4000.0 + 100 * v])
    projs.append(camera.projection_matrix(rot, trans, focal, center))
    uvs.append(camera.project(camera.world_to_camera(pts, rot, trans), focal,
                              center))
    rots.append(rot)
    transs.append(trans)
  uv = jnp.stack(uvs)
  proj = jnp.stack(projs)
  np.testing.assert_allclose(triangulation.triangulate_dlt(uv, proj), pts,
                             atol=1e-1)
  corrupted = uv.at[3].add(200.0)
  weights = jnp.ones((4, 17)).at[3].set(0.0)
  np.testing.assert_allclose(
      triangulation.triangulate_dlt(corrupted, proj, weights), pts, atol=1e-1)
