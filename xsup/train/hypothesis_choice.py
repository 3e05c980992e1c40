"""Choosing among a lifting network's 3D hypotheses without ground truth.

A multi-hypothesis student (`xsup.models.student.HypothesisStudent`) lifts
each 2D pose to K 3D hypotheses, typically a pose and its depth mirror,
which project onto the same keypoints. Hypothesis 0 of the output is the
"confident" one, picked by one of these choices (`CHOICES`):

  * `chirality`: the largest anatomical chirality score
    (`xsup.losses.lifting.chirality_score`) of the pose scaled to unit RMS
    radius: knees bend forwards, elbows backwards, the face looks ahead.
    Rotation invariant; a mirror image negates it.
  * `discriminator`: the largest score of the model's learned pose prior
    (`xsup.models.pose_prior.PosePrior`, a GCN discriminator trained on
    real poses against their mirror images).
  * `temporal`: frames of one sequence: the path through the hypotheses
    that minimises, summed over frames, minus the per-frame score of
    `temporal_unary` (`chirality` or `discriminator`) plus `weight` times
    the mean joint distance between consecutive chosen poses (unit RMS
    radius), found exactly by dynamic programming (`temporal_path`).
    Single frames fall back to the per-frame score.

Scores are `[N, K]`, higher = better; `rank` returns each sample's
hypothesis order, the chosen one first.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from xsup.losses import lifting as losses
from xsup.models import pose_prior

CHOICES = ("chirality", "discriminator", "temporal")
PER_FRAME_CHOICES = ("chirality", "discriminator")


def chirality_scores(hypotheses_3d: jax.Array) -> jax.Array:
  """`[..., K, 17, 3]` -> `[..., K]` chirality of each unit-radius pose."""
  return losses.chirality_score(pose_prior.unit_radius(hypotheses_3d))


def per_frame_score(choice: str, temporal_unary: str = "chirality") -> str:
  """The name of the per-frame score that `choice` ranks by (the temporal
  choice: `temporal_unary`), checked."""
  check_choice(choice)
  base = temporal_unary if choice == "temporal" else choice
  if base not in PER_FRAME_CHOICES:
    raise ValueError(f"temporal_unary must be one of {PER_FRAME_CHOICES}, "
                     f"got {base!r}")
  return base


def check_choice(choice: str) -> str:
  if choice not in CHOICES:
    raise ValueError(f"Unknown hypothesis choice {choice!r}; known: "
                     f"{CHOICES}")
  return choice


def temporal_path(hypotheses_3d: np.ndarray, scores: np.ndarray,
                  weight: float) -> np.ndarray:
  """The hypothesis per frame of the cheapest path through a sequence.

  cost = sum_t -scores[t, k_t] + weight * sum_{t>0} d(t-1, k_{t-1}; t, k_t),
  d = mean joint distance of the unit-radius poses
  (`pose_prior.unit_radius`).

  Args:
    hypotheses_3d: `[T, K, J, 3]` frames in time order.
    scores: `[T, K]` per-frame scores (higher = better).
    weight: weight of the temporal term (>= 0; 0 = per-frame argmax).
  Returns:
    `[T]` int chosen hypothesis per frame.
  """
  hyps = np.asarray(pose_prior.unit_radius(
      jnp.asarray(hypotheses_3d, jnp.float32)),
                    np.float64)
  scores = np.asarray(scores, np.float64)
  if hyps.ndim != 4 or scores.shape != hyps.shape[:2]:
    raise ValueError(f"temporal_path: expected hypotheses [T, K, J, 3] and "
                     f"scores [T, K]; got {hyps.shape} and {scores.shape}")
  if weight < 0:
    raise ValueError(f"temporal_path: weight must be >= 0, got {weight}")
  num_frames, k = scores.shape
  if num_frames == 0:
    return np.zeros((0,), np.int64)
  # dist[t, i, j]: frame t-1 hypothesis i to frame t hypothesis j.
  dist = np.linalg.norm(hyps[:-1, :, None] - hyps[1:, None], axis=-1).mean(-1)
  cost = -scores[0]
  back = np.zeros((num_frames, k), np.int64)
  for t in range(1, num_frames):
    total = cost[:, None] + weight * dist[t - 1]  # [K prev, K now]
    back[t] = np.argmin(total, axis=0)
    cost = total[back[t], np.arange(k)] - scores[t]
  path = np.zeros((num_frames,), np.int64)
  path[-1] = int(np.argmin(cost))
  for t in range(num_frames - 1, 0, -1):
    path[t - 1] = back[t, path[t]]
  return path


def sequence_segments(data: Dict[str, np.ndarray], max_gap: int = 1,
                      source: str = "data") -> List[np.ndarray]:
  """Indices of each sequence's frames, in time order.

  A sequence is one (subject, action, camera) of a split; its frames are
  sorted by `frame` and cut where consecutive frames are more than
  `max_gap` apart.

  Args:
    data: a prepared lifting split with `frame` (and any of `subject`,
      `action`, `camera`).
    max_gap: largest frame step inside one segment.
    source: name for error messages.
  Returns:
    A list of `[T_i]` index arrays covering every sample once.
  """
  if "frame" not in data:
    raise ValueError(f"{source}: the temporal hypothesis choice needs the "
                     "per-sample field 'frame' (frames of sequences); this "
                     "split has none. Use choice 'chirality' or "
                     "'discriminator'.")
  frame = np.asarray(data["frame"]).astype(np.int64)
  keys = []
  for field in ("subject", "action", "camera"):
    if field in data:
      keys.append(np.unique(np.asarray(data[field]).astype(str),
                            return_inverse=True)[1].reshape(-1))
  group = np.zeros(len(frame), np.int64)
  for k in keys:
    group = group * (int(k.max()) + 1 if len(k) else 1) + k
  order = np.lexsort((frame, group))
  cut = np.flatnonzero((np.diff(group[order]) != 0) |
                       (np.diff(frame[order]) > max_gap)) + 1
  return np.split(order, cut)


def rank(scores: np.ndarray, chosen: Optional[np.ndarray] = None
         ) -> np.ndarray:
  """Hypothesis order per sample: by descending score, `chosen` first.

  Args:
    scores: `[N, K]`.
    chosen: `[N]` hypothesis to put first (default: the best scored).
  Returns:
    `[N, K]` int permutation of the hypotheses per sample.
  """
  scores = np.asarray(scores)
  order = np.argsort(-scores, axis=1, kind="stable")
  if chosen is None:
    return order
  chosen = np.asarray(chosen, np.int64)
  rest = order[order != chosen[:, None]].reshape(len(order), -1)
  return np.concatenate([chosen[:, None], rest], axis=1)


def choose(choice: str, hypotheses_3d: np.ndarray,
           scores: Dict[str, np.ndarray],
           segments: Optional[Sequence[np.ndarray]] = None,
           temporal_unary: str = "chirality",
           temporal_weight: float = 1.0) -> np.ndarray:
  """The chosen hypothesis per sample `[N]` (no ground truth).

  Args:
    choice: one of `CHOICES`.
    hypotheses_3d: `[N, K, 17, 3]` root-relative 3D hypotheses.
    scores: per-frame scores by name (`chirality`, and `discriminator` for
      models with a prior), each `[N, K]`.
    segments: for `temporal`, each sequence's sample indices in time order
      (`sequence_segments`); samples outside every segment keep the
      per-frame choice.
    temporal_unary: per-frame score of the temporal choice.
    temporal_weight: its temporal term's weight.
  """
  base = per_frame_score(choice, temporal_unary)
  if base not in scores:
    raise ValueError(f"Hypothesis choice {choice!r} needs {base!r} scores, "
                     f"which this model does not give (it has "
                     f"{sorted(scores)}); the discriminator choice needs a "
                     "student trained with a pose prior "
                     "(hypotheses.prior_poses)")
  chosen = np.argmax(np.asarray(scores[base]), axis=1)
  if choice == "temporal":
    if segments is None:
      raise ValueError("The temporal hypothesis choice needs the frames' "
                       "sequences (segments)")
    hyps = np.asarray(hypotheses_3d)
    for seg in segments:
      if len(seg) > 1:
        chosen[seg] = temporal_path(hyps[seg], scores[base][seg],
                                    temporal_weight)
  return chosen
