"""Cameras: world <-> camera frames, projection with distortion, patch crops.

Conventions (used everywhere in xsup):
  * Extrinsics `(rot, trans)`: `x_cam = rot @ x_world + trans`, with
    `rot` `[..., 3, 3]` and `trans` `[..., 3]` in the units of the points
    (mm for H36M/CMU, m where stated). Camera looks along +z, x right, y down.
  * Intrinsics: focal `[..., 2]` (fx, fy) and centre `[..., 2]` (cx, cy) in
    pixels; H36M distortion `radial` `[..., 3]` (k1, k2, k3) and `tangential`
    `[..., 2]` (p1, p2).
  * Affine crops are 2x3 matrices mapping image pixels to patch pixels.

Functions take numpy or jax arrays and return jax arrays (jnp), batched over
leading axes.
"""

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def world_to_camera(points: Array, rot: Array, trans: Array) -> Array:
  """`[..., J, 3]` world points -> camera frame: `rot @ x + trans`."""
  return jnp.einsum("...ij,...kj->...ki", rot, points) + trans[..., None, :]


def camera_to_world(points: Array, rot: Array, trans: Array) -> Array:
  """`[..., J, 3]` camera points -> world frame: `rot^T (x - trans)`."""
  return jnp.einsum("...ji,...kj->...ki", rot, points - trans[..., None, :])


def extrinsics_from_pose(orientation: Array, position: Array):
  """Camera-to-world orientation and camera centre -> (rot, trans).

  VideoPose3D stores each camera's orientation (camera->world rotation) and
  its position in the world; then `x_cam = orientation^T (x - position)`.

  Args:
    orientation: `[..., 3, 3]` camera-to-world rotation.
    position: `[..., 3]` camera centre in world units.
  Returns:
    `(rot, trans)` of `world_to_camera`.
  """
  rot = jnp.swapaxes(orientation, -1, -2)
  trans = -jnp.einsum("...ij,...j->...i", rot, position)
  return rot, trans


def project(points: Array, focal: Array, center: Array,
            radial: Optional[Array] = None,
            tangential: Optional[Array] = None) -> Array:
  """Perspective projection of camera-frame `[..., J, 3]` -> pixels `[..., J, 2]`.

  With `radial`/`tangential` given, applies the Human3.6M distortion model
  (as distributed with VideoPose3D, whose 2D files were made with it):
    u = clip(x/z, -1, 1), r2 = |u|^2,
    d = 1 + k1 r2 + k2 r2^2 + k3 r2^3 + p1 u_x + p2 u_y,
    u' = u d + (p1, p2) r2,  pixel = f u' + c.
  Batch axes of the camera arrays broadcast against the points' batch axes.
  """
  uv = points[..., :2] / points[..., 2:3]
  if radial is not None or tangential is not None:
    uv = jnp.clip(uv, -1.0, 1.0)
    r2 = jnp.sum(uv * uv, axis=-1, keepdims=True)
    dist = jnp.ones_like(r2)
    if radial is not None:
      k = jnp.asarray(radial)[..., None, :]
      dist = dist + k[..., 0:1] * r2 + k[..., 1:2] * r2**2 + k[..., 2:3] * r2**3
    if tangential is not None:
      p = jnp.asarray(tangential)[..., None, :]
      dist = dist + p[..., 0:1] * uv[..., 0:1] + p[..., 1:2] * uv[..., 1:2]
      uv = uv * dist + p * r2
    else:
      uv = uv * dist
  return uv * jnp.asarray(focal)[..., None, :] + jnp.asarray(center)[..., None, :]


def backproject(pixels: Array, depth: Array, focal: Array, center: Array
                ) -> Array:
  """Pixels `[..., J, 2]` at camera depths `[..., J]` -> camera `[..., J, 3]`.

  Inverse of the undistorted `project`.
  """
  xy = (pixels - jnp.asarray(center)[..., None, :]) / jnp.asarray(
      focal)[..., None, :]
  return jnp.concatenate([xy * depth[..., None], depth[..., None]], axis=-1)


def projection_matrix(rot: Array, trans: Array, focal: Array, center: Array
                      ) -> Array:
  """`[..., 3, 4]` pinhole matrix K [R | t] (no distortion)."""
  zero = jnp.zeros_like(focal[..., 0])
  one = jnp.ones_like(zero)
  k = jnp.stack([
      jnp.stack([focal[..., 0], zero, center[..., 0]], -1),
      jnp.stack([zero, focal[..., 1], center[..., 1]], -1),
      jnp.stack([zero, zero, one], -1)], -2)
  rt = jnp.concatenate([rot, trans[..., :, None]], axis=-1)
  return k @ rt


def perspective_unit_projection(points: Array, depth_offset: float = 5.0,
                                min_depth: float = 1.0) -> Array:
  """Projection of the lifting methods: `xy / clamp(depth_offset + z, min)`.

  Points are in the normalised lifting units (2D inputs scaled so the mean
  pelvis-head distance is 1/5); the camera sits `depth_offset` units away.
  """
  z = jnp.maximum(points[..., 2:3] + depth_offset, min_depth)
  return points[..., :2] / z


def lift_with_depth(xy: Array, depth: Array, depth_offset: float = 5.0,
                    min_depth: float = 1.0) -> Array:
  """Inverse of `perspective_unit_projection`: `[..., J, 2]`, `[..., J, 1]` -> 3D."""
  scale = jnp.maximum(depth + depth_offset, min_depth)
  return jnp.concatenate([xy * scale, depth], axis=-1)


def normalize_2d_lifting(keypoints: np.ndarray, focal: np.ndarray,
                         root: int = 0, scale: Optional[float] = None,
                         target_head_distance: float = 0.2, head: int = 10):
  """ITES 2D input normalisation (numpy, over a whole set).

  Root-centres pixel keypoints, divides by the focal length, then scales the
  set so that the mean root-to-head distance equals `target_head_distance`.

  Args:
    keypoints: `[N, J, 2]` pixels.
    focal: `[N, 2]` or `[2]` focal lengths in pixels.
    root: root joint index.
    scale: a scale computed on another set (e.g. training) to reuse; computed
      from `keypoints` when None.
    target_head_distance: mean |head - root| after scaling.
    head: head joint index.
  Returns:
    `(normalised [N, J, 2] float32, scale float)`.
  """
  keypoints = np.asarray(keypoints, np.float64)
  focal = np.broadcast_to(np.asarray(focal, np.float64), (
      keypoints.shape[0], 2))
  centred = (keypoints - keypoints[:, root:root + 1]) / focal[:, None, :]
  if scale is None:
    dist = np.linalg.norm(centred[:, head] - centred[:, root], axis=-1)
    mean = float(np.mean(dist))
    if not np.isfinite(mean) or mean <= 0:
      raise ValueError("normalize_2d_lifting: mean root-head distance is "
                       f"{mean}; keypoints are degenerate")
    scale = target_head_distance / mean
  return (centred * scale).astype(np.float32), float(scale)


def affine_transform(center: np.ndarray, size: float, out_size: int,
                     rotation_deg: float = 0.0, scale: float = 1.0
                     ) -> np.ndarray:
  """2x3 affine mapping image pixels -> a square patch of `out_size` pixels.

  The image square of side `size * scale` centred at `center` (rotated by
  `rotation_deg` counter-clockwise in the image) maps onto the patch.
  """
  src_w = size * scale
  s = out_size / src_w
  a = np.deg2rad(rotation_deg)
  c, sn = np.cos(a), np.sin(a)
  lin = s * np.array([[c, sn], [-sn, c]])
  cx, cy = np.asarray(center, np.float64)
  t = np.array([out_size / 2.0, out_size / 2.0]) - lin @ np.array([cx, cy])
  return np.concatenate([lin, t[:, None]], axis=1).astype(np.float32)


def apply_affine(points, affine):
  """`[..., J, 2]` points through `[..., 2, 3]` affines."""
  affine = jnp.asarray(affine)
  return jnp.einsum("...ij,...kj->...ki", affine[..., :2], points) + \
      affine[..., None, :, 2]


def invert_affine(affine):
  """Inverse of `[..., 2, 3]` affine maps."""
  affine = jnp.asarray(affine)
  lin_inv = jnp.linalg.inv(affine[..., :2])
  t = -jnp.einsum("...ij,...j->...i", lin_inv, affine[..., 2])
  return jnp.concatenate([lin_inv, t[..., None]], axis=-1)
