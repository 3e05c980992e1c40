"""Pose metrics: MPJPE, N-MPJPE, P-MPJPE, PCK/AUC, the depth-flip protocol.

Every per-sample function takes `pred`, `target` `[N, J, 3]` (any unit; xsup
reports millimetres) and returns per-sample errors `[N]`, so results can be
aggregated per action. `summarize` builds the dictionary written to
`eval/<split>_metrics.json`.

The alignment steps reuse `xsup.geometry.alignment` (one Procrustes in the
package).
"""

import functools
from typing import Dict, Optional, Sequence

import jax.numpy as jnp
import numpy as np

from xsup.geometry import alignment

H36M_ACTIONS = ("Directions", "Discussion", "Eating", "Greeting", "Phoning",
                "Posing", "Purchases", "Sitting", "SittingDown", "Smoking",
                "TakingPhoto", "Waiting", "Walking", "WalkDog", "WalkTogether")

# Scale of the lifting protocol's "calibrate by scale" step (`calibrate_scale`):
# "rotation": the scale of the similarity Procrustes with a proper rotation
# (xsup's default); "reflection": the scale of the best orthogonal map,
# reflections allowed, sum(singular values) / |p|^2, as in the published ITES
# evaluation. They differ when the best alignment is a reflection.
SCALE_PROTOCOLS = ("rotation", "reflection")


def _check(pred, target):
  pred = np.asarray(pred, np.float64)
  target = np.asarray(target, np.float64)
  if pred.shape != target.shape or pred.ndim != 3:
    raise ValueError(f"metrics: pred and target must both be [N, J, C]; got "
                     f"{pred.shape} and {target.shape}")
  return pred, target


def joint_errors(pred, target) -> np.ndarray:
  """Euclidean error per joint `[N, J]`."""
  pred, target = _check(pred, target)
  return np.linalg.norm(pred - target, axis=-1)


def mpjpe(pred, target, root: Optional[int] = 0) -> np.ndarray:
  """Mean per-joint error `[N]` after root alignment (root=None: none)."""
  pred, target = _check(pred, target)
  if root is not None:
    pred = pred - pred[:, root:root + 1]
    target = target - target[:, root:root + 1]
  return joint_errors(pred, target).mean(-1)


def n_mpjpe(pred, target, root: int = 0) -> np.ndarray:
  """MPJPE `[N]` after root alignment and optimal scale <p,t>/<p,p>."""
  pred, target = _check(pred, target)
  pred = pred - pred[:, root:root + 1]
  target = target - target[:, root:root + 1]
  scaled = np.asarray(alignment.scale_align(pred, target))
  return joint_errors(scaled, target).mean(-1)


def p_mpjpe(pred, target) -> np.ndarray:
  """MPJPE `[N]` after similarity Procrustes (scale, proper rotation, shift)."""
  pred, target = _check(pred, target)
  aligned = np.asarray(alignment.procrustes_align(
      jnp.asarray(pred), jnp.asarray(target)), np.float64)
  return joint_errors(aligned, target).mean(-1)


def flip_depth(pred, root: int = 0) -> np.ndarray:
  """Mirrors root-relative `[N, J, 3]` poses in depth (negates z about root)."""
  pred = np.asarray(pred, np.float64)
  rel = pred - pred[:, root:root + 1]
  rel = rel * np.array([1.0, 1.0, -1.0])
  return rel + pred[:, root:root + 1]


def _check_protocol(scale_protocol: str) -> None:
  if scale_protocol not in SCALE_PROTOCOLS:
    raise ValueError(f"Unknown scale protocol {scale_protocol!r}; known: "
                     f"{SCALE_PROTOCOLS} (eval.scale_protocol)")


def calibrate_scale(pred, target, root: int = 0,
                    scale_protocol: str = "rotation") -> np.ndarray:
  """Root-aligned `pred` rescaled by its Procrustes scale onto `target`.

  Args:
    pred: `[N, J, 3]` predictions (any unit).
    target: `[N, J, 3]` ground truth.
    root: root joint.
    scale_protocol: one of `SCALE_PROTOCOLS`.
  Returns:
    `[N, J, 3]` root-relative `pred` in the unit of `target`.
  """
  _check_protocol(scale_protocol)
  pred, target = _check(pred, target)
  pred = pred - pred[:, root:root + 1]
  target = target - target[:, root:root + 1]
  return np.asarray(alignment.procrustes_scale(
      jnp.asarray(pred), jnp.asarray(target),
      allow_reflection=scale_protocol == "reflection"), np.float64)


def flip_tolerant(metric, pred, target, root: int = 0) -> np.ndarray:
  """min(metric(pred), metric(pred mirrored in depth)) per sample `[N]`.

  The depth-flip protocol: a monocular lifter without 3D labels cannot tell
  a pose from its depth mirror image, so the better of the two counts.
  """
  return np.minimum(metric(pred, target),
                    metric(flip_depth(pred, root), target))


def pck(pred, target, threshold: float = 150.0,
        joints: Optional[Sequence[int]] = None) -> float:
  """Fraction of joints within `threshold` (same unit as inputs), 0..1."""
  err = joint_errors(pred, target)
  if joints is not None:
    err = err[:, list(joints)]
  return float(np.mean(err <= threshold))


def auc(pred, target, max_threshold: float = 150.0, step: float = 5.0,
        joints: Optional[Sequence[int]] = None) -> float:
  """Mean PCK over thresholds 0, step, ..., max_threshold (0..1)."""
  err = joint_errors(pred, target)
  if joints is not None:
    err = err[:, list(joints)]
  thresholds = np.arange(0.0, max_threshold + step / 2, step)
  return float(np.mean([np.mean(err <= t) for t in thresholds]))


def pose_errors(pred, target, root: int = 0, calibrate: bool = False,
                scale_protocol: str = "rotation") -> Dict[str, np.ndarray]:
  """Per-sample errors `[N]` of both protocols.

  Keys: `mpjpe`, `n_mpjpe`, `p_mpjpe` (plain) and `mpjpe_flip`,
  `n_mpjpe_flip`, `p_mpjpe_flip` (depth-flip tolerant: the better of the
  prediction and its depth mirror image, per sample). With `calibrate`,
  also `mpjpe_scale_<p>` and `mpjpe_flip_scale_<p>` for each `p` of
  `SCALE_PROTOCOLS`; `mpjpe` and `mpjpe_flip` then use `scale_protocol`.

  Args:
    pred: `[N, J, 3]` predictions.
    target: `[N, J, 3]` ground truth (mm).
    root: root joint for root alignment.
    calibrate: rescale each prediction by its Procrustes scale before
      `mpjpe` ("calibrate by scale"). Lifting predictions live in normalised
      units without a metric scale, so the lifting protocol sets this; N- and
      P-MPJPE are scale-aligned anyway.
    scale_protocol: the scale of `calibrate`, one of `SCALE_PROTOCOLS`.
  """
  _check_protocol(scale_protocol)
  base_n_mpjpe = lambda p, t: n_mpjpe(p, t, root)
  out = {}
  if calibrate:
    for protocol in SCALE_PROTOCOLS:
      fn = functools.partial(_scaled_mpjpe, root=root, scale_protocol=protocol)
      out[f"mpjpe_scale_{protocol}"] = fn(pred, target)
      out[f"mpjpe_flip_scale_{protocol}"] = flip_tolerant(fn, pred, target,
                                                          root)
    out["mpjpe"] = out[f"mpjpe_scale_{scale_protocol}"]
    out["mpjpe_flip"] = out[f"mpjpe_flip_scale_{scale_protocol}"]
  else:
    base_mpjpe = lambda p, t: mpjpe(p, t, root)
    out["mpjpe"] = base_mpjpe(pred, target)
    out["mpjpe_flip"] = flip_tolerant(base_mpjpe, pred, target, root)
  out.update({
      "n_mpjpe": base_n_mpjpe(pred, target),
      "p_mpjpe": p_mpjpe(pred, target),
      "n_mpjpe_flip": flip_tolerant(base_n_mpjpe, pred, target, root),
      "p_mpjpe_flip": flip_tolerant(p_mpjpe, pred, target, root),
  })
  first = ("mpjpe", "n_mpjpe", "p_mpjpe", "mpjpe_flip", "n_mpjpe_flip",
           "p_mpjpe_flip")
  return {k: out[k] for k in first + tuple(k for k in out if k not in first)}


def _scaled_mpjpe(pred, target, root: int, scale_protocol: str) -> np.ndarray:
  """MPJPE `[N]` after `calibrate_scale`."""
  return mpjpe(calibrate_scale(pred, target, root, scale_protocol), target,
               root)


def summarize(errors: Dict[str, np.ndarray],
              actions: Optional[Sequence[str]] = None) -> Dict[str, object]:
  """Averages per-sample errors; adds a per-action table when actions exist.

  Args:
    errors: name -> `[N]` per-sample errors.
    actions: `[N]` action name per sample, or None.
  Returns:
    `{name: mean, ..., "num_samples": N, "per_action": {action: {name: mean},
    "average": {name: mean over actions}}}` (`per_action` only with actions).
  """
  num = len(next(iter(errors.values())))
  out: Dict[str, object] = {k: float(np.mean(v)) for k, v in errors.items()}
  out["num_samples"] = int(num)
  if actions is not None and len(actions):
    actions = np.asarray([a.decode() if isinstance(a, bytes) else str(a)
                          for a in actions])
    table = {}
    for act in sorted(set(actions.tolist())):
      sel = actions == act
      table[act] = {k: float(np.mean(v[sel])) for k, v in errors.items()}
      table[act]["num_samples"] = int(sel.sum())
    table["average"] = {k: float(np.mean([table[a][k] for a in table]))
                        for k in errors}
    out["per_action"] = table
  return out


# Several hypotheses per sample ------------------------------------------------

HYPOTHESIS_METRICS = ("mpjpe", "n_mpjpe", "p_mpjpe", "mpjpe_flip",
                      "n_mpjpe_flip", "p_mpjpe_flip")


def per_hypothesis_errors(hypotheses, target, root: int = 0,
                          calibrate: bool = False,
                          scale_protocol: str = "rotation"
                          ) -> Dict[str, np.ndarray]:
  """`pose_errors` of every hypothesis: name -> `[N, K]`.

  Args:
    hypotheses: `[N, K, J, 3]` predictions.
    target: `[N, J, 3]` ground truth.
    root, calibrate, scale_protocol: as in `pose_errors`.
  """
  hyps = np.asarray(hypotheses, np.float64)
  target = np.asarray(target, np.float64)
  if hyps.ndim != 4 or hyps.shape[:1] + hyps.shape[2:] != target.shape:
    raise ValueError(f"metrics: hypotheses must be [N, K, J, C] matching "
                     f"target [N, J, C]; got {hyps.shape} and "
                     f"{target.shape}")
  n, k = hyps.shape[:2]
  flat = pose_errors(hyps.reshape((n * k,) + hyps.shape[2:]),
                     np.repeat(target, k, axis=0), root=root,
                     calibrate=calibrate, scale_protocol=scale_protocol)
  return {name: v.reshape(n, k) for name, v in flat.items()}


def hypothesis_errors(per_hypothesis: Dict[str, np.ndarray],
                      chosen, prefix: str = "confident",
                      with_best: bool = True) -> Dict[str, np.ndarray]:
  """Per-sample errors of a choice among hypotheses (no oracle) and more.

  Args:
    per_hypothesis: `per_hypothesis_errors` output (name -> `[N, K]`).
    chosen: `[N]` index of the chosen hypothesis of each sample.
    prefix: name of the choice's entries.
    with_best: also return the oracle entries.
  Returns:
    name -> `[N]`:
      `<prefix>/<metric>` for every metric of `per_hypothesis`: the chosen
        hypothesis' error (the `_flip` ones apply the published depth-flip
        oracle to it);
      `<prefix>/ambiguity`: 1 where another hypothesis has a lower P-MPJPE
        than the chosen one (by more than 1e-6 relative), else 0 (its mean
        is the rate of wrong choices);
      with `with_best`: `best/<metric>`: the lowest error over the
        hypotheses (an oracle that picks with the ground truth, per sample
        and metric).
  """
  chosen = np.asarray(chosen, np.int64)
  out = {}
  for name, err in per_hypothesis.items():
    if err.ndim != 2 or len(err) != len(chosen):
      raise ValueError(f"metrics: per-hypothesis {name!r} must be [N, K] "
                       f"with N = {len(chosen)}, got {err.shape}")
    out[f"{prefix}/{name}"] = np.take_along_axis(err, chosen[:, None],
                                                 axis=1)[:, 0]
    if with_best:
      out[f"best/{name}"] = err.min(axis=1)
  p_err = per_hypothesis["p_mpjpe"]
  mine = np.take_along_axis(p_err, chosen[:, None], axis=1)[:, 0]
  out[f"{prefix}/ambiguity"] = (
      mine > p_err.min(axis=1) * (1.0 + 1e-6)).astype(np.float64)
  return out
