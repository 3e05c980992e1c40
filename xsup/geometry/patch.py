"""Normalised patch coordinates of the image detector <-> millimetres.

Host-side numpy: these prepare the detector's targets and convert its
outputs for evaluation and inference.

Patch coordinates (the detector's targets and outputs, normalised):
  x = u / S * 2 - 1 and y = v / S * 2 - 1 for patch pixels (u, v) of an
  S-pixel patch; z = (depth - pelvis depth) / rect_mm, where rect_mm is the
  metric width of the patch at the pelvis depth. With the patch depth unit
  of SPEC.md (rect_mm / S mm per pixel, relative to the pelvis) z is the
  relative depth in patch pixels divided by S, so z = 1 lies one patch width
  behind the pelvis while x = 1 is half a patch width right of the centre
  (the published SURREAL target convention, depth / 2000 mm). rect_mm is
  computed per sample as S / (affine scale) * pelvis depth / fx when the
  split has camera-frame joints (`patch_rect_mm`; 2000 mm for the
  Human3.6M and MPI-INF-3DHP crops, which cut a 2000 mm square at the
  pelvis; it varies per sample for `synthetic_multiview`, whose crops frame
  the projected joints), and is a configured constant otherwise (SURREAL
  renders: 2000 mm).
  A root-relative pose in millimetres is then
  joints * (rect_mm / 2, rect_mm / 2, rect_mm) (x, y at the pelvis depth):
  `patch_units_to_mm`, which equals
  `patch_to_metric_scale(rect_mm, S)` times S / (S - 1)
  (that function maps x by (S - 1) / 2 pixels where the detector divides by
  S).

The exact conversion to camera millimetres (`patch_to_camera`) takes x, y
back to image pixels through the inverse crop affine, z * rect_mm + the
pelvis depth, and back-projects with the camera's focal length and centre.
"""

from __future__ import annotations

import numpy as np

from xsup.geometry import camera as camera_lib


def patch_rect_mm(affine: np.ndarray, focal: np.ndarray,
                  pelvis_depth: np.ndarray, image_size: int) -> np.ndarray:
  """Metric width (mm) of each patch at its pelvis depth.

  Args:
    affine: `[..., 2, 3]` image -> patch pixels.
    focal: `[..., 2]` (fx, fy) pixels.
    pelvis_depth: `[...]` camera z of the pelvis, mm.
    image_size: patch side S, pixels.

  Returns:
    `[...]` float32 mm: S / scale(affine) * pelvis_depth / fx.
  """
  affine = np.asarray(affine, np.float64)
  scale = np.sqrt(np.abs(np.linalg.det(affine[..., :2, :2])))
  return (image_size / scale * np.asarray(pelvis_depth, np.float64)
          / np.asarray(focal, np.float64)[..., 0]).astype(np.float32)


def normalise_patch_joints(joints_2d_patch: np.ndarray,
                           depth_rel_mm: np.ndarray, image_size: int,
                           rect_mm: np.ndarray) -> np.ndarray:
  """Patch pixels + relative depth -> normalised patch coordinates.

  Args:
    joints_2d_patch: `[..., J, 2]` patch pixels.
    depth_rel_mm: `[..., J]` camera depth minus pelvis depth, mm.
    image_size: S.
    rect_mm: `[...]` (or scalar) patch width at the pelvis depth, mm.

  Returns:
    `[..., J, 3]` float32 (u / S * 2 - 1, v / S * 2 - 1, depth / rect_mm).
  """
  xy = np.asarray(joints_2d_patch, np.float64) / image_size * 2.0 - 1.0
  rect = np.asarray(rect_mm, np.float64)[..., None]
  z = np.asarray(depth_rel_mm, np.float64) / rect
  return np.concatenate([xy, z[..., None]], axis=-1).astype(np.float32)


def patch_to_metric_scale(rect_3d_mm: float = 2000.0,
                          patch_width: int = 256) -> np.ndarray:
  """`[3]` mm per normalised patch unit for (x, y, z).

  A patch of `patch_width` pixels spans `rect_3d_mm`, so a pixel is
  rect_3d_mm / patch_width mm. Normalised x, y in [-1, 1] cover
  patch_width - 1 pixels (x_pix = (x + 1) / 2 * (W - 1)) and normalised
  depth z covers z * (W - 1) pixels relative to the root, the conversion
  the published model uses to go from patch to camera coordinates (x, y are
  perspective image coordinates; treating them as metric at the root's
  depth is the approximation of this space).
  """
  pixel_mm = rect_3d_mm / patch_width
  half = 0.5 * (patch_width - 1) * pixel_mm
  return np.array([half, half, 2.0 * half], np.float32)


def patch_units_to_mm(rect_mm: float, image_size: int) -> np.ndarray:
  """`[3]` float32 mm per normalised patch unit: (rect / 2, rect / 2, rect).

  `patch_to_metric_scale(rect_mm, S)` (x over (S - 1) / 2 pixels) rescaled
  by S / (S - 1) to the detector's u / S * 2 - 1 convention.
  """
  metric = patch_to_metric_scale(rect_mm, image_size)
  return metric * np.float32(image_size / (image_size - 1))


def patch_to_camera(joints: np.ndarray, affine: np.ndarray,
                    focal: np.ndarray, center: np.ndarray,
                    pelvis_depth: np.ndarray, rect_mm: np.ndarray,
                    image_size: int) -> np.ndarray:
  """Normalised patch joints -> camera-frame millimetres.

  Args:
    joints: `[N, ..., J, 3]` normalised patch coordinates (any axes between
      N and J, e.g. hypotheses).
    affine: `[N, 2, 3]` image -> patch pixels.
    focal, center: `[N, 2]` pixels.
    pelvis_depth: `[N]` camera z of the pelvis (mm), e.g. ground truth.
    rect_mm: `[N]` patch width at the pelvis depth (mm).
    image_size: S.

  Returns:
    `[N, ..., J, 3]` float64 camera mm.
  """
  joints = np.asarray(joints, np.float64)
  extra = joints.ndim - 3
  expand = lambda a: np.asarray(a, np.float64).reshape(
      a.shape[:1] + (1,) * extra + a.shape[1:])
  pixels = (joints[..., :2] + 1.0) / 2.0 * image_size
  inverse = np.asarray(camera_lib.invert_affine(np.asarray(affine,
                                                           np.float64)))
  image = np.asarray(camera_lib.apply_affine(pixels, expand(inverse)))
  depth = (joints[..., 2] * expand(np.asarray(rect_mm))[..., None]
           + expand(np.asarray(pelvis_depth))[..., None])
  return np.asarray(camera_lib.backproject(image, depth, expand(focal),
                                           expand(center)), np.float64)
