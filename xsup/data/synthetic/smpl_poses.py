"""Random SMPL pose and shape parameters from per-joint angle ranges.

The X-as-Supervision prior draws "real" poses for its discriminator by
sampling each SMPL axis-angle component independently inside a per-joint
range, then running the body model (`xsup.models.smpl`). This module is the
numpy sampler (no body model needed).

Each of the 72 pose components (joint j, axis a in x, y, z of the SMPL
frame: y up, the body faces +z) has a range `[centre - below, centre +
above]` in degrees. A component is drawn as:
  * with probability `drop_prob`, exactly 0 (the rest angle) -- except the
    global orientation (joint 0), which is always drawn;
  * otherwise, with probability 1/2 on each side of the centre: a
    half-normal deviation with std = width / 1.96 (so ~95 % fall inside),
    clipped to the width of that side (`above` or `below`).
The shape coefficients are clipped normals with std limit / 1.96 in
[-limit, limit] (limit 1.5).

The reference drew the drop decision and the side once per component for a
whole batch (all poses of a batch then share which components are zero and
on which side they lie); here they are drawn per pose by default, and
`shared_across_batch=True` reproduces the batch-level draws.

Ranges (degrees; `above`/`below` around `centre`, all others 0):

  =============== ==== ============ ============ ============
  joint           axis  x            y            z
  =============== ==== ============ ============ ============
  0 pelvis (root)       +-5          +-180        +-5
  1 left hip            -60..45      -10..10      0..30
  2 right hip           -60..45      -10..10      -30..0
  3 spine1              -20..60      -30..30      -30..30
  4 left knee           0..70        -20..20      -10..10
  5 right knee          0..70        -20..20      -10..10
  6 spine2              -10..20      0            -15..15
  15 head               -15..15      -50..50      -15..15
  16 left shoulder      -90..90      -120..50     -90..90 (centre -60)
  17 right shoulder     -90..90      -50..120     -90..90 (centre 60)
  18 left elbow         -60..60      -120..0      -15..15
  19 right elbow        -60..60      0..120       -15..15
  =============== ==== ============ ============ ============

The `implausible` variant (negative examples) widens the hips' flexion to
-90..70 and lets the knees bend the wrong way (x in -50..10), with a
narrower spine1 (x in -40..30).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

NUM_SMPL_JOINTS = 24
NUM_POSE_PARAMS = 3 * NUM_SMPL_JOINTS

# (joint, axis) -> (above, below, centre) in degrees; absent entries are 0.
_PLAUSIBLE = {
    (0, 0): (5, 5, 0), (0, 1): (180, 180, 0), (0, 2): (5, 5, 0),
    (1, 0): (45, 60, 0), (1, 1): (10, 10, 0), (1, 2): (30, 0, 0),
    (2, 0): (45, 60, 0), (2, 1): (10, 10, 0), (2, 2): (0, 30, 0),
    (3, 0): (60, 20, 0), (3, 1): (30, 30, 0), (3, 2): (30, 30, 0),
    (4, 0): (70, 0, 0), (4, 1): (20, 20, 0), (4, 2): (10, 10, 0),
    (5, 0): (70, 0, 0), (5, 1): (20, 20, 0), (5, 2): (10, 10, 0),
    (6, 0): (20, 10, 0), (6, 2): (15, 15, 0),
    (15, 0): (15, 15, 0), (15, 1): (50, 50, 0), (15, 2): (15, 15, 0),
    (16, 0): (90, 90, 0), (16, 1): (50, 120, 0), (16, 2): (150, 30, -60),
    (17, 0): (90, 90, 0), (17, 1): (120, 50, 0), (17, 2): (30, 150, 60),
    (18, 0): (60, 60, 0), (18, 1): (0, 120, 0), (18, 2): (15, 15, 0),
    (19, 0): (60, 60, 0), (19, 1): (120, 0, 0), (19, 2): (15, 15, 0),
}
_IMPLAUSIBLE = dict(_PLAUSIBLE)
_IMPLAUSIBLE.update({
    (1, 0): (70, 90, 0), (2, 0): (70, 90, 0), (3, 0): (30, 40, 0),
    (4, 0): (10, 50, 0), (5, 0): (10, 50, 0),
})
_VARIANTS = {"plausible": _PLAUSIBLE, "implausible": _IMPLAUSIBLE}


def pose_ranges_deg(variant: str = "plausible") -> np.ndarray:
  """`[72, 3]` float32 (above, below, centre) degrees per pose component.

  Row `3 j + a` is joint j, axis a.
  """
  if variant not in _VARIANTS:
    raise ValueError(f"Unknown SMPL pose range variant {variant!r}; known: "
                     f"{sorted(_VARIANTS)}")
  table = np.zeros((NUM_POSE_PARAMS, 3), np.float32)
  for (joint, axis), value in _VARIANTS[variant].items():
    table[3 * joint + axis] = value
  return table


def _half_normal_clipped(rng: np.random.Generator, width: np.ndarray,
                         shape: Tuple[int, ...]) -> np.ndarray:
  """|N(0, width / 1.96)| clipped to `width` (0 where width is 0)."""
  return np.minimum(np.abs(rng.normal(size=shape)) * width / 1.96, width)


def sample_smpl_poses(rng: np.random.Generator, num: int, *,
                      variant: str = "plausible", drop_prob: float = 0.4,
                      shared_across_batch: bool = False) -> np.ndarray:
  """Random SMPL poses by per-joint ranges (see the module docstring).

  Args:
    rng: numpy generator.
    num: number of poses.
    variant: "plausible" or "implausible" (negative examples).
    drop_prob: probability that a (non-root) component is exactly 0.
    shared_across_batch: draw the drop decision and the side once per
      component for all `num` poses (the reference's behaviour).
  Returns:
    `[num, 72]` float32 axis-angle, radians (joint 0 = global orientation).
  """
  table = pose_ranges_deg(variant).astype(np.float64)
  above, below, centre = table[:, 0], table[:, 1], table[:, 2]
  choice_shape = (1, NUM_POSE_PARAMS) if shared_across_batch else (
      num, NUM_POSE_PARAMS)
  positive = rng.uniform(size=choice_shape) < 0.5
  keep = rng.uniform(size=choice_shape) >= drop_prob
  keep = keep | (np.arange(NUM_POSE_PARAMS) < 3)   # the root is always drawn
  width = np.where(positive, above, below)
  dev = _half_normal_clipped(rng, width, (num, NUM_POSE_PARAMS))
  value = centre + np.where(positive, dev, -dev)
  value = np.where(keep, value, 0.0)
  return np.deg2rad(value).astype(np.float32)


def sample_smpl_betas(rng: np.random.Generator, num: int, *,
                      num_betas: int = 10, limit: float = 1.5,
                      shared_across_batch: bool = False) -> np.ndarray:
  """`[num, num_betas]` float32 shape coefficients in [-limit, limit].

  Normal with std limit / 1.96, clipped. With `shared_across_batch`, a
  single sign for every coefficient of the whole batch (the reference's
  behaviour).
  """
  mag = _half_normal_clipped(rng, np.float64(limit), (num, num_betas))
  sign_shape = (1, 1) if shared_across_batch else (num, num_betas)
  sign = np.where(rng.uniform(size=sign_shape) < 0.5, 1.0, -1.0)
  return (mag * sign).astype(np.float32)
