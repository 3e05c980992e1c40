"""Evaluation of image-detector predictions against a prepared split.

`evaluate_image_predictions` turns the detector's normalised patch
predictions of an evaluation split (single- or multi-view) into its metrics.
Predictions go to camera millimetres properly (`xsup.geometry.patch`): x, y
back to image pixels through the inverse crop affine, z * rect_mm + the
ground-truth pelvis depth (rect_mm from that depth), then back-projection
with the camera's focal length and centre; 3D errors are root-relative.

Reported (per view entry, averaged; splits with actions also get
per-action tables, `xsup.metrics.summarize`):
  * `confident/` (hypothesis 0) and `best/` (per joint, the hypothesis
    closest to the truth) MPJPE, N-MPJPE and P-MPJPE; with left/right
    swapping on, the same without it under `noswap/`;
  * `mpjpe_2d` (patch pixels, after swapping) and `mpjpe_2d_noswap`;
  * `ambiguity_ratio`: the fraction of left/right pairs whose swap lowers
    the 2D error (`swap_left_right`); with several views also
    `ambiguity_cross_view`, how often the views of an example disagree;
  * `baseline/`: the errors of a constant (mean) pose;
  * with several views and extrinsics: `triangulated/`, the DLT
    triangulation of the 2D predictions against the world-frame truth;
  * protocol `"mpi_inf_3dhp"`: the PCK / AUC of that dataset's protocol on
    its 17 test joints (`mpi_inf_3dhp_scores`); `"h36m"` adds nothing.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, Optional, Sequence, Tuple

import jax.numpy as jnp
import numpy as np

from xsup import metrics as metrics_lib
from xsup import skeleton as skel
from xsup.geometry import alignment
from xsup.geometry import camera as camera_lib
from xsup.geometry import patch as patch_lib
from xsup.geometry import triangulation

_H18 = skel.H36M18
# Values of `protocol` (config.dataset.eval_protocol).
EVAL_PROTOCOLS = ("h36m", "mpi_inf_3dhp")
# Fields of the prepared evaluation split that the image evaluator reads.
IMAGE_EVAL_FIELDS = ("joints_3d_camera", "joints_2d_patch", "affine",
                     "focal", "center")

Batch = Dict[str, Any]


# ---------------------------------------------------------------------------
# Left/right swaps.


def swap_left_right(pred_2d: np.ndarray, gt_2d: np.ndarray,
                    pairs: Sequence[Tuple[int, int]] = _H18.flip_pairs
                    ) -> Tuple[np.ndarray, np.ndarray]:
  """Which left/right pairs to swap so that the 2D error drops.

  A pair (r, l) is swapped when |p_l - g_r| + |p_r - g_l| <
  |p_r - g_r| + |p_l - g_l| (Euclidean, pixels).

  Args:
    pred_2d: `[..., J, 2]` predictions.
    gt_2d: `[..., J, 2]` ground truth.
    pairs: (right, left) joint pairs.

  Returns:
    `(permutation [..., J] int, swapped [..., P] bool)`: gather joints with
    `np.take_along_axis(x, permutation[..., None], axis=-2)`.
  """
  pairs = np.asarray(pairs)
  r, l = pairs[:, 0], pairs[:, 1]
  dist = lambda a, b: np.linalg.norm(a - b, axis=-1)
  keep = dist(pred_2d[..., r, :], gt_2d[..., r, :]) + dist(
      pred_2d[..., l, :], gt_2d[..., l, :])
  swap = dist(pred_2d[..., l, :], gt_2d[..., r, :]) + dist(
      pred_2d[..., r, :], gt_2d[..., l, :])
  swapped = swap < keep
  perm = np.broadcast_to(np.arange(pred_2d.shape[-2]),
                         pred_2d.shape[:-1]).copy()
  perm[..., r] = np.where(swapped, l, r)
  perm[..., l] = np.where(swapped, r, l)
  return perm, swapped


def _take_joints(x: np.ndarray, perm: np.ndarray) -> np.ndarray:
  """Gathers joints `[N, V, ..., J, C]` by `perm [N, V, J]`."""
  extra = x.ndim - perm.ndim - 1
  idx = perm.reshape(perm.shape[:2] + (1,) * extra + perm.shape[2:])
  return np.take_along_axis(x, idx[..., None], axis=-2)


# ---------------------------------------------------------------------------
# MPI-INF-3DHP protocol.


def mpi_inf_3dhp_poses(pred: np.ndarray, target: np.ndarray
                       ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """H36M-18 predictions and 3DHP targets in the protocol's frame.

  Predictions are mapped to the 17 test joints (`skel.convert`, h36m18 ->
  mpi3dhp17; see `xsup.skeleton` for the approximated joints) and both
  poses are made relative to their pelvis.

  Args:
    pred: `[N, 18, 3]` H36M-18 joints, mm.
    target: `[N, 17, 3]` `mpi3dhp17` joints, mm (the universal-skeleton
      annotation for the 3DHP builders), same frame as `pred`.

  Returns:
    `(pred, aligned, target)`, each `[N, 17, 3]` pelvis-relative mm;
    `aligned` is `pred` after the similarity (Procrustes) transform that
    best maps its 14 protocol joints and pelvis onto `target`'s, per sample
    (spine and head, only approximated by H36M joints, do not steer it).
  """
  pred = np.asarray(pred, np.float64)
  target = np.asarray(target, np.float64)
  num = skel.MPI3DHP17.num_joints
  if target.ndim != 3 or target.shape[1:] != (num, 3):
    raise ValueError(f"mpi_inf_3dhp_poses: target must be [N, {num}, 3] "
                     f"mpi3dhp17 joints, got {target.shape}")
  pred = skel.convert(pred, _H18.name, skel.MPI3DHP17.name)
  if pred.shape != target.shape:
    raise ValueError(f"mpi_inf_3dhp_poses: {pred.shape[0]} predictions for "
                     f"{target.shape[0]} targets")
  root = skel.MPI3DHP17.root
  pred = pred - pred[:, root:root + 1]
  target = target - target[:, root:root + 1]
  fit = list(skel.MPI3DHP17_PCK_JOINTS) + [root]
  scale, rot, trans = (np.asarray(a, np.float64) for a in alignment.procrustes(
      jnp.asarray(pred[:, fit]), jnp.asarray(target[:, fit])))
  aligned = (scale[:, None, None] * np.einsum("nij,nkj->nki", rot, pred)
             + trans[:, None, :])
  return pred, aligned, target


def pck_auc_scores(pred: np.ndarray, aligned: np.ndarray, target: np.ndarray,
                   threshold_mm: float = 150.0, auc_step_mm: float = 5.0
                   ) -> Dict[str, float]:
  """PCK / AUC (fractions in [0, 1]) of `mpi_inf_3dhp_poses`' output.

  Args:
    pred, aligned, target: `[N, 17, 3]` pelvis-relative `mpi3dhp17` mm.
    threshold_mm: PCK threshold.
    auc_step_mm: AUC threshold step (thresholds 0, step, ..., threshold).

  Returns:
    `pck150`, `auc`: on the 14 protocol joints
    (`skel.MPI3DHP17_PCK_JOINTS`: all but pelvis, spine and head);
    `pa_pck150`, `pa_auc`: the same for `aligned`; `pck150_all17`,
    `auc_all17`: all 17 joints of `pred` (the root counts as correct).
  """
  joints = skel.MPI3DHP17_PCK_JOINTS
  pck = functools.partial(metrics_lib.pck, threshold=threshold_mm)
  auc = functools.partial(metrics_lib.auc, max_threshold=threshold_mm,
                          step=auc_step_mm)
  name = f"pck{threshold_mm:g}"
  return {name: pck(pred, target, joints=joints),
          "auc": auc(pred, target, joints=joints),
          f"pa_{name}": pck(aligned, target, joints=joints),
          "pa_auc": auc(aligned, target, joints=joints),
          f"{name}_all17": pck(pred, target),
          "auc_all17": auc(pred, target)}


def mpi_inf_3dhp_scores(pred: np.ndarray, target: np.ndarray,
                        threshold_mm: float = 150.0,
                        auc_step_mm: float = 5.0) -> Dict[str, float]:
  """MPI-INF-3DHP PCK / AUC of H36M-18 predictions (SPEC.md section 0).

  Args:
    pred: `[N, 18, 3]` H36M-18 joints, mm.
    target: `[N, 17, 3]` `mpi3dhp17` joints, mm, same frame.
    threshold_mm, auc_step_mm: see `pck_auc_scores`.

  Returns:
    `pck_auc_scores` of `mpi_inf_3dhp_poses(pred, target)`.
  """
  return pck_auc_scores(*mpi_inf_3dhp_poses(pred, target),
                        threshold_mm=threshold_mm, auc_step_mm=auc_step_mm)


def add_mpi_inf_3dhp_scores(results: Dict[str, Any],
                            predictions: Dict[str, np.ndarray], data: Batch,
                            view_actions: Optional[np.ndarray]) -> None:
  """Adds `<name>/pck150`, `<name>/auc`, ... (`pck_auc_scores`) in place.

  Args:
    results: the split's metrics; its `per_action` tables, when present,
      get the scores of their own samples and of the mean over actions.
    predictions: name (e.g. `confident`, `noswap/best`) ->
      `[N * V, 18, 3]` camera mm.
    data: the split: the targets are its `joints_3d_univ17`
      `[N, V, 17, 3]` (3DHP builders) or else its H36M-18 ground truth
      `joints_3d_camera` mapped to the 3DHP joints.
    view_actions: `[N * V]` action of each entry, or None.
  """
  if "joints_3d_univ17" in data:
    source = "joints_3d_univ17"
    target = np.asarray(data[source], np.float64)
  else:
    source = "joints_3d_camera"
    target = skel.convert(np.asarray(data[source], np.float64), _H18.name,
                          skel.MPI3DHP17.name)
  target = target.reshape((-1,) + target.shape[-2:])
  results["pck_ground_truth"] = source
  table = results.get("per_action")
  names = None
  if table is not None and view_actions is not None:
    names = np.asarray([a.decode() if isinstance(a, bytes) else str(a)
                        for a in view_actions])
  for name, pred in predictions.items():
    poses = mpi_inf_3dhp_poses(pred, target)
    scores = pck_auc_scores(*poses)
    results.update({f"{name}/{k}": x for k, x in scores.items()})
    if names is None:
      continue
    acts = [a for a in table if a != "average"]
    for act in acts:
      sel = names == act
      table[act].update({f"{name}/{k}": x for k, x in pck_auc_scores(
          *[p[sel] for p in poses]).items()})
    table["average"].update({
        f"{name}/{k}": float(np.mean([table[a][f"{name}/{k}"]
                                      for a in acts])) for k in scores})


# ---------------------------------------------------------------------------
# Multi-view triangulation.


def triangulated_errors(pred_2d: np.ndarray, data: Batch
                        ) -> Dict[str, np.ndarray]:
  """Per-example errors `[N]` of the DLT triangulation of 2D predictions.

  Patch-pixel predictions `[N, V, J, 2]` go back to image pixels through
  the inverse crop affines; the world-frame result is compared with the
  ground truth of view 0 taken to the world frame.

  Args:
    pred_2d: `[N, V, J, 2]` patch pixels.
    data: the split, with `affine` `[N, V, 2, 3]`, `rot` `[N, V, 3, 3]`,
      `trans` `[N, V, 3]` (mm), `focal`, `center` `[N, V, 2]` and
      `joints_3d_camera` `[N, V, J, 3]` (mm).

  Returns:
    `triangulated/{mpjpe,n_mpjpe,p_mpjpe}`, each `[N]` mm.
  """
  affine = np.asarray(data["affine"], np.float64)
  inverse = np.asarray(camera_lib.invert_affine(affine))
  image_2d = np.asarray(camera_lib.apply_affine(pred_2d, inverse))
  rot = np.asarray(data["rot"], np.float64)
  trans = np.asarray(data["trans"], np.float64)
  proj = camera_lib.projection_matrix(rot, trans,
                                      np.asarray(data["focal"], np.float64),
                                      np.asarray(data["center"], np.float64))
  world = np.asarray(triangulation.triangulate_dlt(
      jnp.asarray(image_2d, jnp.float32), jnp.asarray(proj, jnp.float32)),
                     np.float64)
  gt_cam = np.asarray(data["joints_3d_camera"], np.float64)[:, 0]
  gt_world = np.asarray(camera_lib.camera_to_world(gt_cam, rot[:, 0],
                                                   trans[:, 0]))
  return {"triangulated/mpjpe": metrics_lib.mpjpe(world, gt_world),
          "triangulated/n_mpjpe": metrics_lib.n_mpjpe(world, gt_world),
          "triangulated/p_mpjpe": metrics_lib.p_mpjpe(world, gt_world)}


# ---------------------------------------------------------------------------
# The image evaluator.


def evaluate_image_predictions(pred: np.ndarray, data: Batch,
                               baseline_pose: np.ndarray,
                               protocol: str = "h36m",
                               swap: bool = True,
                               image_size: Optional[int] = None
                               ) -> Dict[str, Any]:
  """Metrics of the detector's predictions on one evaluation split.

  Args:
    pred: `[N, V, K, 18, 3]` normalised patch coordinates (K hypotheses,
      hypothesis 0 the most confident; `xsup.geometry.patch`).
    data: the split's labels: `joints_3d_camera` `[N, V, 18, 3]` mm, `joints_2d_patch`
      `[N, V, 18, 2]` patch pixels, `affine` `[N, V, 2, 3]`, `focal`,
      `center` `[N, V, 2]` pixels; optionally `action` `[N]`, `rot`
      `[N, V, 3, 3]` and `trans` `[N, V, 3]` (multi-view triangulation),
      `joints_3d_univ17` `[N, V, 17, 3]` (3DHP targets).
    baseline_pose: `[18, 3]` root-relative mm, the constant prediction of
      the `baseline/` errors (e.g. the labelled domain's mean pose).
    protocol: one of `EVAL_PROTOCOLS`.
    swap: undo left/right swaps that lower the 2D error before the 3D
      errors (the unswapped ones are then also reported, under `noswap/`).
    image_size: patch side S in pixels (default: read from `data["image"]`
      `[N, V, S, S, 3]` when present).

  Returns:
    The metrics (see the module docstring): floats, `per_action` tables
    where the split has actions, `num_samples` N and `num_views` V.
  """
  if protocol not in EVAL_PROTOCOLS:
    raise ValueError(f"evaluate_image_predictions: protocol={protocol!r}; "
                     f"expected one of {EVAL_PROTOCOLS}")
  missing = [f for f in IMAGE_EVAL_FIELDS if f not in data]
  if missing:
    raise ValueError(f"evaluate_image_predictions: the split lacks "
                     f"{missing}; has {sorted(data)}")
  if image_size is None:
    if "image" not in data:
      raise ValueError("evaluate_image_predictions: give image_size or the "
                       "split's images")
    image_size = np.shape(data["image"])[2]
  size = int(image_size)
  n, v = np.shape(data["joints_3d_camera"])[:2]
  pred = np.asarray(pred, np.float64)
  if pred.ndim != 5 or pred.shape[:2] != (n, v) or pred.shape[-2:] != (
      _H18.num_joints, 3):
    raise ValueError(f"evaluate_image_predictions: pred must be "
                     f"[{n}, {v}, K, {_H18.num_joints}, 3] (h36m18), got "
                     f"{pred.shape}")
  gt_cam = np.asarray(data["joints_3d_camera"], np.float64)
  gt_2d = np.asarray(data["joints_2d_patch"], np.float64)
  affine = np.asarray(data["affine"], np.float64)
  focal = np.asarray(data["focal"], np.float64)
  center = np.asarray(data["center"], np.float64)
  pelvis = gt_cam[..., 0, 2]
  rect = patch_lib.patch_rect_mm(affine, focal, pelvis, size)
  actions = data.get("action")

  pred_2d = (pred[:, :, 0, :, :2] + 1.0) / 2.0 * size
  perm, swapped = swap_left_right(pred_2d, gt_2d)
  errors = {}
  results: Dict[str, Any] = {}
  results["mpjpe_2d_noswap"] = float(np.mean(np.linalg.norm(
      pred_2d - gt_2d, axis=-1)))
  if swap:
    pred_sw = _take_joints(pred, perm)
    pred_2d = _take_joints(pred_2d, perm)
  else:
    pred_sw = pred
  errors["mpjpe_2d"] = np.linalg.norm(pred_2d - gt_2d, axis=-1).mean(
      -1).reshape(-1)
  results["ambiguity_ratio"] = float(np.mean(swapped))
  if v > 1:
    k = swapped.sum(axis=1)  # [N, P] views swapped per pair
    results["ambiguity_cross_view"] = float(np.mean(np.minimum(k, v - k))
                                            / v)

  def camera(p):  # [N, V, K, J, 3] -> [N, V, K, J, 3] mm
    flat = p.reshape((n * v,) + p.shape[2:])
    cam = patch_lib.patch_to_camera(
        flat, affine.reshape(-1, 2, 3), focal.reshape(-1, 2),
        center.reshape(-1, 2), pelvis.reshape(-1), rect.reshape(-1), size)
    return cam.reshape(p.shape)

  gt_flat = gt_cam.reshape((n * v,) + gt_cam.shape[2:])
  protocol_preds = {}  # e.g. "confident" -> [N * V, 18, 3] camera mm

  def add_3d(prefix, cam):
    confident = cam[:, :, 0].reshape(gt_flat.shape)
    dist = np.linalg.norm(cam - gt_cam[:, :, None], axis=-1)  # [N,V,K,J]
    best_idx = np.argmin(dist, axis=2)[:, :, None, :, None]
    best = np.take_along_axis(cam, best_idx, axis=2)[:, :, 0].reshape(
        gt_flat.shape)
    for mode, p in (("confident", confident), ("best", best)):
      errors[f"{prefix}{mode}/mpjpe"] = metrics_lib.mpjpe(p, gt_flat)
      errors[f"{prefix}{mode}/n_mpjpe"] = metrics_lib.n_mpjpe(p, gt_flat)
      errors[f"{prefix}{mode}/p_mpjpe"] = metrics_lib.p_mpjpe(p, gt_flat)
      protocol_preds[f"{prefix}{mode}"] = p

  add_3d("", camera(pred_sw))
  if swap:
    add_3d("noswap/", camera(pred))
  base = np.broadcast_to(baseline_pose, gt_flat.shape)
  errors["baseline/mpjpe"] = metrics_lib.mpjpe(base, gt_flat)
  errors["baseline/p_mpjpe"] = metrics_lib.p_mpjpe(base, gt_flat)

  view_actions = None if actions is None else np.repeat(
      np.asarray(actions), v)
  results.update(metrics_lib.summarize(errors, view_actions))
  if v > 1 and "rot" in data and "trans" in data:
    tri = triangulated_errors(pred_2d, data)
    tri_summary = metrics_lib.summarize(tri, actions)
    for key, value in tri_summary.items():
      if key == "per_action":
        for act, table in value.items():
          results["per_action"][act].update(
              {k: x for k, x in table.items() if k != "num_samples"})
      elif key != "num_samples":
        results[key] = value
  if protocol == "mpi_inf_3dhp":
    add_mpi_inf_3dhp_scores(results, protocol_preds, data, view_actions)
  results["num_samples"] = int(n)
  results["num_views"] = int(v)
  return results
