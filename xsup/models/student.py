"""The ITES student: a semantic GCN lifting normalised 2D joints to depth.

`Student` maps `[B, J, 2]` normalised 2D joints (root-centred, divided by the
focal length and rescaled, see `xsup.geometry.camera.normalize_2d_lifting`) to
a depth per joint `[B, J, 1]` (same normalised units). Only the lifting is
done here; the 3D shape [x (d + 5), y (d + 5), d], the distillation and the
equivariance cycle belong to the losses / training step.

Architecture (H36M-17 defaults): SemGraphConv 2 -> hidden, BatchNorm, ReLU
(dropout); `num_blocks` residual blocks, each two layers of
[SemGraphConv(x) + GraphNonLocal(x), BatchNorm, ReLU (dropout)] plus the
block's input; SemGraphConv hidden -> 1.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import numpy as np

from xsup import skeleton as skeleton_lib
from xsup.models import graph

Array = jax.Array


class _GraphLayer(nn.Module):
  """[SemGraphConv (+ GraphNonLocal of the same input), BN, ReLU, dropout]."""
  features: int
  adjacency: Any
  groups: Optional[Sequence[Sequence[int]]]
  dropout: float
  reference_pooling: bool
  reference_init: bool

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    h = graph.SemGraphConv(self.features, self.adjacency,
                           reference_init=self.reference_init,
                           name="gconv")(x)
    if self.groups is not None:
      # The non-local block carries its own residual: it returns x + W y.
      h = h + graph.GraphNonLocal(self.groups,
                                  reference_pooling=self.reference_pooling,
                                  name="non_local")(x, train)
    h = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                     epsilon=1e-5, name="bn")(h)
    h = nn.relu(h)
    if self.dropout > 0.0:
      h = nn.Dropout(self.dropout, deterministic=not train)(h)
    return h


class Student(nn.Module):
  """Semantic GCN lifter `[B, J, 2] -> [B, J, 1]` (depth per joint).

  Attributes:
    adjacency: `[J, J]` 0/1 with self loops; default H36M-17's.
    groups: joint groups of the non-local blocks; default
      `skeleton.H36M17_NONLOCAL_GROUPS`.
    hidden: hidden channels (128).
    num_blocks: residual blocks (4).
    dropout: dropout rate after each ReLU; None or 0 disables it. When
      positive, training needs a "dropout" RNG.
    reference_pooling: non-local keys/values pooled by fixed windows as in
      ITES (drops joint 9 with the default groups); default per group.
    reference_init: SemGraphConv kernels with the ITES (PyTorch 3-d tensor)
      xavier fans, much smaller for hidden layers; see `SemGraphConv`.
    out_features: output channels (1 = depth).
  """
  adjacency: Any = None
  groups: Optional[Sequence[Sequence[int]]] = None
  hidden: int = 128
  num_blocks: int = 4
  dropout: Optional[float] = None
  reference_pooling: bool = False
  reference_init: bool = False
  out_features: int = 1

  def __post_init__(self):
    # Nested tuples keep the module hashable (usable as a static argument).
    object.__setattr__(self, "adjacency",
                       graph.freeze_adjacency(self.adjacency))
    object.__setattr__(self, "groups", graph.freeze_groups(self.groups))
    super().__post_init__()

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    """Lifts 2D joints to depth.

    Args:
      x: `[B, J, 2]` normalised 2D joints.
      train: batch statistics (call with `mutable=["batch_stats"]`) and
        dropout when True; running statistics when False.

    Returns:
      `[B, J, out_features]` depth.
    """
    adjacency = (skeleton_lib.H36M17.adjacency(self_loops=True)
                 if self.adjacency is None else np.asarray(self.adjacency))
    groups = (skeleton_lib.H36M17_NONLOCAL_GROUPS
              if self.groups is None else self.groups)
    num = adjacency.shape[0]
    if x.ndim != 3 or x.shape[1] != num or x.shape[2] != 2:
      raise ValueError(f"Student: expected 2D joints [B, {num}, 2], got shape "
                       f"{tuple(x.shape)}")
    rate = float(self.dropout or 0.0)

    def layer(grps, name):
      return _GraphLayer(self.hidden, adjacency, grps, rate,
                         self.reference_pooling, self.reference_init,
                         name=name)

    h = layer(None, "input")(x, train)
    for b in range(self.num_blocks):
      out = layer(groups, f"block{b}_0")(h, train)
      out = layer(groups, f"block{b}_1")(out, train)
      h = h + out
    return graph.SemGraphConv(self.out_features, adjacency,
                              reference_init=self.reference_init,
                              name="output")(h)
