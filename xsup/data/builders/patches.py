"""Person-centred patches: boxes, affine warps and patch joints.

Pixel convention (as OpenCV's `warpAffine`): integer coordinates are pixel
centres, so pixel (i, j) of an image sits at x = j, y = i. A 2x3 affine `A`
(from `xsup.geometry.camera.affine_transform`) maps image pixels to patch
pixels, and patch pixel p takes the bilinear image value at `A^-1 p`; pixels
outside the image read 0.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np
from PIL import Image

from xsup.geometry import camera

# Side of the 3D box around the pelvis that the patch covers, mm.
RECT_3D_MM = 2000.0


def warp_affine(image: np.ndarray, affine: np.ndarray, out_size: int
                ) -> np.ndarray:
  """Cuts a square patch.

  Args:
    image: `[H, W, C]` or `[H, W]` uint8.
    affine: `[2, 3]` image -> patch pixels.
    out_size: patch side in pixels.
  Returns:
    `[out_size, out_size, C]` (or `[out_size, out_size]`) uint8, bilinear.
  """
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f"warp_affine: expected uint8 pixels, got {image.dtype}")
  a = np.asarray(affine, np.float64)
  if a.shape != (2, 3):
    raise ValueError(f"warp_affine: affine must be [2, 3], got {a.shape}")
  lin_inv = np.linalg.inv(a[:, :2])
  t_inv = -lin_inv @ a[:, 2]
  # PIL samples the input at M(q) for output point q, with continuous
  # coordinates whose pixel centres sit at +0.5: M(q) = A^-1 (q - 0.5) + 0.5.
  t_pil = t_inv - lin_inv @ np.array([0.5, 0.5]) + 0.5
  coeffs = (lin_inv[0, 0], lin_inv[0, 1], t_pil[0],
            lin_inv[1, 0], lin_inv[1, 1], t_pil[1])
  pil = Image.fromarray(image)
  out = pil.transform((out_size, out_size), Image.Transform.AFFINE, coeffs,
                      resample=Image.Resampling.BILINEAR, fillcolor=0)
  return np.asarray(out, np.uint8)


def pelvis_box(pelvis_camera: np.ndarray, focal: np.ndarray,
               center: np.ndarray, rect_mm: float = RECT_3D_MM
               ) -> Tuple[np.ndarray, float]:
  """Image box of a `rect_mm` square around the pelvis, facing the camera.

  Args:
    pelvis_camera: `[3]` camera-frame mm.
    focal, center: `[2]` pixels.
    rect_mm: side of the 3D square.
  Returns:
    (box centre `[2]` pixels, box width in pixels).
  """
  p = np.asarray(pelvis_camera, np.float64)
  if p[2] <= 0:
    raise ValueError(f"pelvis_box: pelvis depth must be positive, got "
                     f"{p[2]} mm")
  half = np.array([rect_mm / 2.0, rect_mm / 2.0, 0.0])
  corners = np.stack([p - half, p + half])
  uv = np.asarray(camera.project(corners, focal, center), np.float64)
  box_center = uv.mean(axis=0)
  return box_center, float(uv[1, 0] - uv[0, 0])


def patch_joints(joints_camera: np.ndarray, focal: np.ndarray,
                 center: np.ndarray, affine: np.ndarray) -> np.ndarray:
  """`[J, 3]` camera mm -> `[J, 2]` patch pixels (pinhole, then affine)."""
  uv = camera.project(np.asarray(joints_camera, np.float64), focal, center)
  return np.asarray(camera.apply_affine(uv, affine), np.float32)


def check_same_size(image: np.ndarray, mask: np.ndarray, image_path: str,
                    mask_path: str) -> None:
  """Raises ValueError when an image and its mask differ in size."""
  if image.shape[:2] != mask.shape[:2]:
    raise ValueError(
        f"Mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but image "
        f"{image_path} is {image.shape[1]}x{image.shape[0]}")


def camera_view(image: np.ndarray, mask: np.ndarray,
                joints_camera: np.ndarray, focal: np.ndarray,
                center: np.ndarray, rot: np.ndarray, trans: np.ndarray,
                image_size: int, root: int = 0,
                rect_mm: float = RECT_3D_MM) -> Dict[str, np.ndarray]:
  """Cuts one calibrated view around its pelvis.

  Args:
    image: `[H, W, 3]` uint8.
    mask: `[H, W]` uint8 (0..255).
    joints_camera: `[J, 3]` camera mm.
    focal, center: `[2]` pixels.
    rot, trans: `[3, 3]`, `[3]` mm world -> camera.
    image_size: patch side S.
    root: pelvis index in `joints_camera`.
    rect_mm: side of the 3D box the patch covers.
  Returns:
    The per-view features of `image_features.multiview_features`:
    image `[S, S, 3]`, mask `[S, S, 1]`, joints_3d_camera, joints_2d_patch,
    affine, rot, trans, focal, center (float32).
  """
  joints_camera = np.asarray(joints_camera, np.float64)
  box_center, box_size = pelvis_box(joints_camera[root], focal, center,
                                    rect_mm)
  affine = camera.affine_transform(box_center, box_size, image_size)
  f32 = lambda x: np.asarray(x, np.float32)
  return {
      "image": warp_affine(image, affine, image_size),
      "mask": warp_affine(mask, affine, image_size)[..., None],
      "joints_3d_camera": f32(joints_camera),
      "joints_2d_patch": patch_joints(joints_camera, focal, center, affine),
      "affine": f32(affine),
      "rot": f32(rot),
      "trans": f32(trans),
      "focal": f32(focal),
      "center": f32(center),
  }


def stack_views(views: List[Dict[str, np.ndarray]]) -> Dict[str, Any]:
  """Per-view dicts -> one dict: images as lists, arrays stacked `[V, ...]`."""
  out = {}
  for key in views[0]:
    values = [v[key] for v in views]
    out[key] = values if key in ("image", "mask") else np.stack(values)
  return out
