"""Normalised patch coordinates <-> millimetres (`xsup.geometry.patch`)."""

import numpy as np
import pytest

from xsup.geometry import camera
from xsup.geometry import patch

S = 64


def test_metric_scale_hand_computed():
  # 2000 mm over 256 px: 7.8125 mm/px; x spans (256 - 1) / 2 px per unit.
  np.testing.assert_allclose(patch.patch_to_metric_scale(2000.0, 256),
                             [996.09375, 996.09375, 1992.1875], rtol=1e-7)


@pytest.mark.parametrize("rect_mm,size", [(2000.0, 256), (2000.0, 64),
                                          (1733.5, 64), (np.float32(2211.7),
                                                         48)])
def test_patch_units_to_mm(rect_mm, size):
  units = patch.patch_units_to_mm(rect_mm, size)
  assert units.dtype == np.float32
  # x = 1 is half a patch width, z = 1 a whole one.
  np.testing.assert_allclose(units, [rect_mm / 2, rect_mm / 2, rect_mm],
                             rtol=1e-6)


def test_rect_mm_and_normalisation_hand_computed():
  # A 4x zoom (patch pixels per image pixel) and fx = 1000 px at 5 m: the
  # S-pixel patch covers S / 4 image pixels, i.e. S / 4 * 5000 / 1000 mm.
  affine = np.array([[4.0, 0.0, -100.0], [0.0, 4.0, 30.0]])
  rect = patch.patch_rect_mm(affine, np.array([1000.0, 900.0]), 5000.0, S)
  assert rect == pytest.approx(S / 4 * 5.0)
  np.testing.assert_allclose(
      patch.normalise_patch_joints(np.array([[32.0, 16.0], [0.0, 64.0]]),
                                   np.array([0.0, 500.0]), S, 2000.0),
      [[0.0, -0.5, 0.0], [-1.0, 1.0, 0.25]])


def test_patch_to_camera_inverts_projection_crop_and_normalisation():
  rng = np.random.default_rng(0)
  n, joints = 3, 5
  cam = rng.normal(size=(n, joints, 3)) * [300.0, 400.0, 200.0]
  cam += np.array([[100.0, -50.0, 4500.0], [-300.0, 80.0, 5200.0],
                   [0.0, 0.0, 3800.0]])[:, None]
  focal = np.array([[1145.0, 1140.0], [1000.0, 1000.0], [1500.0, 1490.0]])
  center = np.array([[512.0, 515.0], [500.0, 500.0], [480.0, 520.0]])
  pixels = np.asarray(camera.project(cam, focal, center), np.float64)
  affine = np.stack([camera.affine_transform(p[0], 400.0 + 50 * i, S,
                                             rotation_deg=10.0 * i)
                     for i, p in enumerate(pixels)]).astype(np.float64)
  patch_px = np.asarray(camera.apply_affine(pixels, affine), np.float64)
  pelvis = cam[:, 0, 2]
  rect = patch.patch_rect_mm(affine, focal, pelvis, S)
  normalised = patch.normalise_patch_joints(
      patch_px, cam[..., 2] - pelvis[:, None], S, rect)
  # A hypothesis axis between N and J, as the detector outputs.
  both = np.stack([normalised, normalised], axis=1)
  back = patch.patch_to_camera(both, affine, focal, center, pelvis, rect, S)
  assert back.shape == (n, 2, joints, 3) and back.dtype == np.float64
  np.testing.assert_allclose(back[:, 0], cam, atol=0.05)
  np.testing.assert_array_equal(back[:, 0], back[:, 1])
