"""TensorBoard image summaries of the X-as-Supervision detector.

For fixed groups of examples (`SummaryExamples`: e.g. the first target
training, synthetic and evaluation examples, view 0), `summary_images`
draws the input patch with its predicted skeleton, the rendered line mask
beside the person mask (or the line rendering of the labels), the 3D
hypotheses against the labels where there are any, and the per-joint depth
marginals. `xsup.train.xsup.XSupTask.summary_images` picks the examples and
supplies the detector and the line renderer.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from xsup import skeleton as skel
from xsup import viz
from xsup.geometry import patch as patch_lib

_H18 = skel.H36M18
# Examples per group of the image summaries.
SUMMARY_EXAMPLES = 4


@dataclasses.dataclass(frozen=True)
class SummaryExamples:
  """A group of fixed examples of the image summaries (one view each).

  Attributes:
    name: tag prefix.
    images: `[n, S, S, 3]` uint8 detector inputs.
    masks: `[n, S, S]` person masks in [0, 1], or None.
    labels: `[n, 18, 3]` ground truth in normalised patch coordinates, or
      None.
    rect_mm: `[n]` patch width at the pelvis depth (mm).
  """
  name: str
  images: np.ndarray
  masks: Optional[np.ndarray]
  labels: Optional[np.ndarray]
  rect_mm: np.ndarray


def summary_images(
    groups: Sequence[SummaryExamples],
    predict_fn: Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray]],
    render_fn: Callable[[jax.Array], jax.Array],
    image_size: int) -> Dict[str, np.ndarray]:
  """Figures of `groups` for TensorBoard.

  Args:
    groups: the example groups.
    predict_fn: uint8 `[N, S, S, 3]` -> (normalised joints `[N, K, 18, 3]`,
      depth marginals `[N, 18, D]`), the detector in inference mode.
    render_fn: `[B, 18, 2]` normalised patch (x, y) float32 -> `[B, S, S,
      1]` line mask in [0, 1] (as in the mask loss).
    image_size: S.

  Returns:
    Per group `<g>`, uint8 `[n, H, W, 3]` images:
      * `<g>/skeleton_2d`: the input patch with the predicted skeleton
        (hypothesis 0 solid, the others faint; they share x, y here);
      * `<g>/line_mask`: the line mask of the prediction | the person mask,
        or the line mask of the labels where there is no person mask | both
        overlaid (red, green);
      * `<g>/pose_3d`: all hypotheses, root-relative mm (x, y at the pelvis
        depth), and the labels in black where there are any;
      * `<g>/depth_marginals`: p(z) per joint with the hypotheses' bins.
  """
  joints, marginals = predict_fn(np.concatenate([g.images for g in groups]))
  size = image_size
  scale = max(1, -(-256 // size))  # At least 256 pixels wide.
  depth_dim = marginals.shape[-1]
  # One rendering call for the predictions, one for the labels.
  rendered_all = np.asarray(render_fn(
      jnp.asarray(joints[:, 0, :, :2], jnp.float32)))[..., 0]
  labelled = [g.labels[..., :2] for g in groups if g.labels is not None]
  label_lines = None if not labelled else np.asarray(render_fn(
      jnp.asarray(np.concatenate(labelled), jnp.float32)))[..., 0]
  out = {}
  start = label_start = 0
  for g in groups:
    num = len(g.images)
    pred = joints[start:start + num].astype(np.float64)
    marg = marginals[start:start + num]
    rendered = rendered_all[start:start + num]
    start += num
    reference = g.masks
    if g.labels is not None:
      if reference is None:
        reference = label_lines[label_start:label_start + num]
      label_start += num
    units = np.stack([patch_lib.patch_units_to_mm(float(r), size)
                      for r in g.rect_mm])[:, None, None]  # [n, 1, 1, 3]
    pred_mm = (pred - pred[:, :, :1]) * units
    gt_mm = (None if g.labels is None else
             (g.labels - g.labels[:, :1]) * units[:, 0])
    pixels = (pred[..., :2] + 1.0) / 2.0 * size
    bins = (pred[..., 2] + 1.0) / 2.0 * depth_dim
    out[f"{g.name}/skeleton_2d"] = np.stack([
        viz.skeleton_overlay(g.images[i], pixels[i], _H18, scale)
        for i in range(num)])
    out[f"{g.name}/line_mask"] = np.stack([
        viz.masks_side_by_side(rendered[i],
                               None if reference is None else reference[i],
                               scale=max(1, scale // 2))
        for i in range(num)])
    out[f"{g.name}/pose_3d"] = np.stack([
        viz.pose_3d_image(pred_mm[i], None if gt_mm is None else gt_mm[i],
                          _H18)
        for i in range(num)])
    out[f"{g.name}/depth_marginals"] = np.stack([
        viz.depth_marginals_image(marg[i], bins[i], _H18)
        for i in range(num)])
  return out
