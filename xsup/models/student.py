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

With `num_hypotheses` K > 1 the last layer gives K depths per joint
(`[B, K, J, 1]`); everything before it is shared. `HypothesisStudent`
bundles such a student with an optional learned pose prior that scores
3D hypotheses (`xsup.models.pose_prior`).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from xsup import skeleton as skeleton_lib
from xsup.models import graph
from xsup.models import pose_prior

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
    num_hypotheses: K outputs per joint; 1 (default) returns `[B, J,
      out_features]` exactly as the single-hypothesis student, K > 1
      returns `[B, K, J, out_features]` from a K times wider last layer.
  """
  adjacency: Any = None
  groups: Optional[Sequence[Sequence[int]]] = None
  hidden: int = 128
  num_blocks: int = 4
  dropout: Optional[float] = None
  reference_pooling: bool = False
  reference_init: bool = False
  out_features: int = 1
  num_hypotheses: int = 1

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
      `[B, J, out_features]` depth (`[B, K, J, out_features]` when
      `num_hypotheses` K > 1).
    """
    adjacency = (skeleton_lib.H36M17.adjacency(self_loops=True)
                 if self.adjacency is None else np.asarray(self.adjacency))
    groups = (skeleton_lib.H36M17_NONLOCAL_GROUPS
              if self.groups is None else self.groups)
    num = adjacency.shape[0]
    if x.ndim != 3 or x.shape[1] != num or x.shape[2] != 2:
      raise ValueError(f"Student: expected 2D joints [B, {num}, 2], got shape "
                       f"{tuple(x.shape)}")
    if self.num_hypotheses < 1:
      raise ValueError(f"Student: num_hypotheses must be >= 1, got "
                       f"{self.num_hypotheses}")
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
    k = self.num_hypotheses
    out = graph.SemGraphConv(self.out_features * k, adjacency,
                             reference_init=self.reference_init,
                             name="output")(h)
    if k == 1:
      return out
    out = out.reshape(out.shape[:2] + (k, self.out_features))
    return jnp.moveaxis(out, 2, 1)  # [B, K, J, out_features]


class HypothesisStudent(nn.Module):
  """A K-hypothesis student and, optionally, a pose prior scoring 3D poses.

  Variables: `params/student/...` (a `Student` with `num_hypotheses`),
  `batch_stats/student/...` and, with a prior, `params/prior/...`
  (`pose_prior.PosePrior`). `__call__` lifts and `prior_score` scores 3D
  poses; initialise with `method=HypothesisStudent.init_all`, which
  creates both.

  Attributes:
    student_kwargs: keyword arguments of the `Student` (without
      `num_hypotheses`), as a dict or (name, value) pairs.
    num_hypotheses: K.
    prior_kwargs: keyword arguments of the `PosePrior` (dict or pairs), or
      None for no prior.
  """
  student_kwargs: Any = None
  num_hypotheses: int = 2
  prior_kwargs: Any = None

  def __post_init__(self):
    object.__setattr__(self, "student_kwargs",
                       _frozen_kwargs(self.student_kwargs))
    if self.prior_kwargs is not None:
      object.__setattr__(self, "prior_kwargs",
                         _frozen_kwargs(self.prior_kwargs))
    super().__post_init__()

  def setup(self):
    kwargs = dict(self.student_kwargs)
    if "num_hypotheses" in kwargs:
      raise ValueError("HypothesisStudent: give num_hypotheses once, not in "
                       "student_kwargs")
    self.student = Student(num_hypotheses=self.num_hypotheses, **kwargs)
    self.prior = (None if self.prior_kwargs is None else
                  pose_prior.PosePrior(**dict(self.prior_kwargs)))

  @property
  def has_prior(self) -> bool:
    return self.prior_kwargs is not None

  def __call__(self, x: Array, train: bool) -> Array:
    """`[B, J, 2]` normalised 2D -> depth hypotheses `[B, K, J, 1]`."""
    out = self.student(x, train)
    if self.num_hypotheses == 1:
      out = out[:, None]
    return out

  def prior_score(self, pose_3d: Array, train: bool = False) -> Array:
    """`[B, J, 3]` root-relative 3D (any unit, any rigid frame) -> `[B]`
    plausibility (higher = more like a real, anatomically oriented pose)."""
    if self.prior is None:
      raise ValueError("HypothesisStudent: this model has no pose prior "
                       "(prior_kwargs=None)")
    return self.prior(pose_3d, train)

  def init_all(self, x: Array, train: bool = False) -> Array:
    """Touches every submodule (for `init`); returns `__call__(x)`."""
    depth = self(x, train)
    if self.prior is not None:
      pose = jnp.concatenate([x, jnp.zeros_like(x[..., :1])], axis=-1)
      self.prior(pose, train)
    return depth


def _frozen_kwargs(kwargs) -> Tuple[Tuple[str, Any], ...]:
  """A dict (or pairs) -> sorted (name, value) pairs, hashable."""
  if kwargs is None:
    return ()
  items = kwargs.items() if isinstance(kwargs, dict) else kwargs
  return tuple(sorted((str(k), _hashable(v)) for k, v in items))


def _hashable(value):
  if isinstance(value, list):
    return tuple(_hashable(v) for v in value)
  return value
