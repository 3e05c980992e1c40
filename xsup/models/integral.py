"""Integral (soft-argmax) regression with multiple depth hypotheses.

Pure functions on per-joint 3D heatmap logits `[B, J, D, H, W]` (D depth bins,
H rows, W columns). Coordinates are returned normalised to the patch:

  x = E[column] / W * 2 - 1,   y = E[row] / H * 2 - 1,   z = E[bin] / D * 2 - 1

where the expectations are over bin indices 0..n-1, so a coordinate lies in
[-1, 1 - 2/n]. Each axis is divided by its own size; the published model
divides x by H and y by W, which is the same thing for its square heatmaps.
Any D, H, W work (the published model needs D == H == W).

Depth hypotheses (`num_hypo` > 1) come from the depth marginal p(z):
  1. candidates are the interior local maxima, p[i] >= p[i-1] and
     p[i] >= p[i+1] for i in 1..D-2 (plateaus count), ranked by p[i];
  2. if there are fewer than `num_hypo` of them, the remaining hypotheses are
     the highest non-peak bins (boundary bins included), by value;
  3. ties are broken by the lowest index.
Hypothesis 0 is therefore the highest peak. For each chosen bin c the depth is
the expectation of p restricted to the window [c - n//2, c + n//2]
(n = `neighbor_size`, odd; bins outside 0..D-1 count as zero mass). The
choice of bins is discrete (no gradient); the windowed expectation is
differentiable with respect to the logits. With `num_hypo == 1` the depth is
the plain expectation over the whole marginal (integral regression).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class IntegralOutput(NamedTuple):
  """Result of `integral_multi_hypothesis`.

  Attributes:
    joints: `[B, K, J, 3]` normalised (x, y, z) in [-1, 1]; x, y identical
      across the K hypotheses; hypothesis 0 is the most probable depth.
    depth_marginals: `[B, J, D]` p(z), sums to 1 over D.
    x_marginals: `[B, J, W]` p(x).
    y_marginals: `[B, J, H]` p(y).
    depth_indices: `[B, K, J]` int32 bins the depth hypotheses are centred
      on (for K == 1: the argmax of p(z); the depth itself is then the full
      expectation).
  """
  joints: jax.Array
  depth_marginals: jax.Array
  x_marginals: jax.Array
  y_marginals: jax.Array
  depth_indices: jax.Array


def _check_volume(logits: jax.Array) -> None:
  if logits.ndim != 5:
    raise ValueError(f"integral.py: expected heatmap logits [B, J, D, H, W], "
                     f"got shape {logits.shape}.")


def volume_softmax(logits: jax.Array) -> jax.Array:
  """Softmax over each joint's whole D*H*W volume.

  Args:
    logits: `[B, J, D, H, W]`, any float dtype.

  Returns:
    `[B, J, D, H, W]` probabilities summing to 1 per (b, j), in float32 (or
    float64 for float64 input).
  """
  _check_volume(logits)
  logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
  return jax.nn.softmax(logits, axis=(2, 3, 4))


def marginals(probs: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Marginals of a per-joint volume distribution.

  Args:
    probs: `[B, J, D, H, W]` probabilities.

  Returns:
    (p_x `[B, J, W]`, p_y `[B, J, H]`, p_z `[B, J, D]`).
  """
  _check_volume(probs)
  p_x = jnp.sum(probs, axis=(2, 3))
  p_y = jnp.sum(probs, axis=(2, 4))
  p_z = jnp.sum(probs, axis=(3, 4))
  return p_x, p_y, p_z


def channels_last_marginals(logits: jax.Array
                            ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Marginals of the per-joint volume softmax of channels-last logits.

  The same numbers as `marginals(volume_softmax(l))` with
  `l = logits.transpose(0, 3, 4, 1, 2)`, without moving the volume (a
  detector head emits `[B, H, W, J * D]`; transposing that volume and its
  gradient costs more than the softmax itself on CPU).

  Args:
    logits: `[B, H, W, J, D]`, any float dtype.

  Returns:
    (p_x `[B, J, W]`, p_y `[B, J, H]`, p_z `[B, J, D]`) in float32 (or
    float64 for float64 input).
  """
  if logits.ndim != 5:
    raise ValueError(f"integral.py: expected channels-last logits "
                     f"[B, H, W, J, D], got shape {logits.shape}.")
  logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
  probs = jax.nn.softmax(logits, axis=(1, 2, 4))
  p_x = jnp.swapaxes(jnp.sum(probs, axis=(1, 4)), 1, 2)
  p_y = jnp.swapaxes(jnp.sum(probs, axis=(2, 4)), 1, 2)
  p_z = jnp.sum(probs, axis=(1, 2))
  return p_x, p_y, p_z


def expectation(p: jax.Array) -> jax.Array:
  """Expected bin index of a marginal `[..., N]` -> `[...]` (bins 0..N-1)."""
  return jnp.sum(p * jnp.arange(p.shape[-1], dtype=p.dtype), axis=-1)


def normalize_coordinate(index: jax.Array, size: int) -> jax.Array:
  """Bin index (0..size-1, fractional allowed) -> index / size * 2 - 1."""
  return index / size * 2.0 - 1.0


def select_depth_hypotheses(p_z: jax.Array, num_hypo: int) -> jax.Array:
  """Bins to centre the depth hypotheses on (see the module docstring).

  Args:
    p_z: `[..., D]` depth marginal.
    num_hypo: number of hypotheses K, 1 <= K <= D.

  Returns:
    `[..., K]` int32 bin indices, best first. Not differentiable (the input is
    wrapped in `stop_gradient`).
  """
  depth = p_z.shape[-1]
  if not 1 <= num_hypo <= depth:
    raise ValueError(f"integral.py: num_hypo must be in [1, D={depth}], got "
                     f"{num_hypo}.")
  p = jax.lax.stop_gradient(p_z)
  interior = (p[..., 1:-1] >= p[..., :-2]) & (p[..., 1:-1] >= p[..., 2:])
  no_peak = jnp.zeros(p.shape[:-1] + (1,), dtype=bool)
  is_peak = jnp.concatenate([no_peak, interior, no_peak], axis=-1)
  # lexsort: last key is primary. Peaks first, then higher p; the sort is
  # stable so equal keys keep the lower index first.
  order = jnp.lexsort((-p, jnp.logical_not(is_peak)), axis=-1)
  return order[..., :num_hypo].astype(jnp.int32)


def windowed_expectation(p: jax.Array, centers: jax.Array,
                         neighbor_size: int) -> jax.Array:
  """Expected bin index of `p` within windows around given bins.

  For each centre c, returns sum_i(i * p[i]) / sum_i(p[i]) over
  i in [c - n//2, c + n//2] ∩ [0, N-1] (zero padding outside). A window with
  zero mass returns c.

  Args:
    p: `[..., N]` non-negative weights (e.g. a marginal).
    centers: `[..., K]` integer bins.
    neighbor_size: n, odd window length.

  Returns:
    `[..., K]` fractional bin indices, differentiable w.r.t. `p`.
  """
  if neighbor_size < 1 or neighbor_size % 2 == 0:
    raise ValueError(f"integral.py: neighbor_size must be a positive odd "
                     f"integer, got {neighbor_size}.")
  n = p.shape[-1]
  half = neighbor_size // 2
  centers = jax.lax.stop_gradient(centers).astype(jnp.int32)
  offsets = jnp.arange(-half, half + 1, dtype=jnp.int32)
  pos = centers[..., :, None] + offsets  # [..., K, n_w]
  valid = (pos >= 0) & (pos < n)
  flat_pos = jnp.clip(pos, 0, n - 1).reshape(pos.shape[:-2] + (-1,))
  w = jnp.take_along_axis(p, flat_pos, axis=-1).reshape(pos.shape)
  w = jnp.where(valid, w, 0.0)
  num = jnp.sum(w * pos.astype(p.dtype), axis=-1)
  den = jnp.sum(w, axis=-1)
  ok = den > 0
  safe_den = jnp.where(ok, den, 1.0)
  return jnp.where(ok, num / safe_den, centers.astype(p.dtype))


def integral_multi_hypothesis(logits: jax.Array, num_hypo: int = 3,
                              neighbor_size: int = 15) -> IntegralOutput:
  """Soft-argmax x, y and `num_hypo` depth hypotheses from heatmap logits.

  Args:
    logits: `[B, J, D, H, W]` heatmap logits.
    num_hypo: K >= 1 depth hypotheses; 1 gives plain integral regression.
    neighbor_size: odd window (in depth bins) of each hypothesis' local
      expectation; unused when `num_hypo == 1`.

  Returns:
    `IntegralOutput` with `joints` `[B, K, J, 3]` in normalised patch
    coordinates (see the module docstring).
  """
  _check_volume(logits)
  return integral_from_marginals(*marginals(volume_softmax(logits)),
                                 num_hypo=num_hypo,
                                 neighbor_size=neighbor_size)


def integral_from_marginals(p_x: jax.Array, p_y: jax.Array, p_z: jax.Array,
                            num_hypo: int = 3, neighbor_size: int = 15
                            ) -> IntegralOutput:
  """`integral_multi_hypothesis` from the volume's marginals.

  Args:
    p_x: `[B, J, W]`, p_y: `[B, J, H]`, p_z: `[B, J, D]` marginals (e.g.
      from `marginals` or `channels_last_marginals`).
    num_hypo, neighbor_size: as `integral_multi_hypothesis`.

  Returns:
    `IntegralOutput` (see `integral_multi_hypothesis`).
  """
  depth, height, width = p_z.shape[-1], p_y.shape[-1], p_x.shape[-1]
  if not 1 <= num_hypo <= depth:
    raise ValueError(f"integral.py: num_hypo must be in [1, D={depth}], got "
                     f"{num_hypo}.")
  if num_hypo > 1 and (neighbor_size < 1 or neighbor_size % 2 == 0):
    raise ValueError(f"integral.py: neighbor_size must be a positive odd "
                     f"integer, got {neighbor_size}.")
  x = normalize_coordinate(expectation(p_x), width)  # [B, J]
  y = normalize_coordinate(expectation(p_y), height)
  if num_hypo == 1:
    centers = jnp.argmax(jax.lax.stop_gradient(p_z), axis=-1)[..., None]
    centers = centers.astype(jnp.int32)
    z_bins = expectation(p_z)[..., None]  # [B, J, 1]
  else:
    centers = select_depth_hypotheses(p_z, num_hypo)  # [B, J, K]
    z_bins = windowed_expectation(p_z, centers, neighbor_size)
  z = normalize_coordinate(z_bins, depth)
  z = jnp.swapaxes(z, 1, 2)  # [B, K, J]
  xy = jnp.broadcast_to(jnp.stack([x, y], axis=-1)[:, None],
                        z.shape + (2,))
  joints = jnp.concatenate([xy, z[..., None]], axis=-1)
  return IntegralOutput(joints=joints, depth_marginals=p_z, x_marginals=p_x,
                        y_marginals=p_y,
                        depth_indices=jnp.swapaxes(centers, 1, 2))
