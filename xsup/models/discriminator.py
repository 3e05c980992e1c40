"""X-as-Supervision 3D pose discriminators (graph networks on H36M-18).

Each discriminator maps root-relative 3D joints `[B, J, 3]` (J = 18 on the
default `skeleton.H36M18` layout, one consistent unit chosen by the caller) to
an unbounded realism score `[B, 1]` for the least-squares GAN. Pick one by
name with `build_discriminator`:

  * `simple_gcn`: linear embedding, two GCNConv + ReLU layers, linear head.
  * `res_gcn`: GCNConv + ReLU, `num_layers` residual GCN blocks (dropout 0.5),
    GCNConv + ReLU, linear head. Bone edges weighted by 1 / bone length.
  * `res_sage_gcn`: optional positional code, linear embedding, `num_layers`
    residual blocks [SAGEConv, LayerNorm, ReLU] x 2, one more such layer,
    linear head.
  * `res_sage_gcn_decouple` (default): the SAGE stack run twice, on joint
    positions and on bone vectors (child - parent, zero at the root), each
    with the positional code; per-node features of both streams concatenated
    over all nodes -> MLP 512 (ReLU, dropout 0.2) -> 1.

All graphs use the skeleton's tree adjacency with self loops. The graph
LayerNorm is per pose by default, so a pose's score never depends on the rest
of the batch; `batch_wide_norm=True` reproduces the reference, which
normalises over the whole batch at once. Dropout needs a "dropout" RNG when
`train=True`.
"""

from __future__ import annotations

from typing import Dict, Type

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from xsup import skeleton as skeleton_lib
from xsup.models import graph

Array = jax.Array


def _check_joints(joints: Array, skel: skeleton_lib.Skeleton, where: str):
  if joints.ndim != 3 or joints.shape[1] != skel.num_joints:
    raise ValueError(f"{where}: expected root-relative joints [B, "
                     f"{skel.num_joints}, C] ({skel.name}), got shape "
                     f"{tuple(joints.shape)}")


def inverse_bone_length_weights(joints: Array, skel: skeleton_lib.Skeleton,
                                min_length: float = 1e-6) -> Array:
  """Edge weights 1 / |x_child - x_parent| on the bones, 1 on the diagonal.

  Args:
    joints: `[..., J, 3]`, any length unit (the weights are in 1 / unit).
    skel: layout giving the bones.
    min_length: lengths are clamped from below to this before inverting.

  Returns:
    `[..., J, J]` symmetric weights, 0 off the tree.
  """
  child = np.array([c for c, _ in skel.bones])
  parent = np.array([p for _, p in skel.bones])
  diff = joints[..., child, :] - joints[..., parent, :]
  sq = jnp.sum(diff * diff, axis=-1)
  inv = jax.lax.rsqrt(jnp.maximum(sq, min_length**2))  # [..., num_bones]
  num = skel.num_joints
  weights = jnp.broadcast_to(jnp.eye(num, dtype=joints.dtype),
                             joints.shape[:-2] + (num, num))
  weights = weights.at[..., child, parent].set(inv)
  return weights.at[..., parent, child].set(inv)


class _GCNResidual(nn.Module):
  """Two GCNConv layers (optional BatchNorm, ReLU, dropout) plus the input."""
  features: int
  adjacency: np.ndarray
  use_batch_norm: bool
  dropout: float

  @nn.compact
  def __call__(self, x: Array, weights: Array, train: bool) -> Array:
    h = x
    for i in range(2):
      h = graph.GCNConv(self.features, self.adjacency, name=f"gcn{i}")(h,
                                                                       weights)
      if self.use_batch_norm:
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                         epsilon=1e-5, name=f"bn{i}")(h)
      h = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(h))
    return h + x


class _SAGELayer(nn.Module):
  """SAGEConv, graph LayerNorm, ReLU."""
  features: int
  adjacency: np.ndarray
  batch_wide_norm: bool

  @nn.compact
  def __call__(self, x: Array) -> Array:
    h = graph.SAGEConv(self.features, self.adjacency, name="sage")(x)
    h = graph.GraphLayerNorm(batch_wide=self.batch_wide_norm, name="norm")(h)
    return nn.relu(h)


class _SAGEStack(nn.Module):
  """Embedding + `num_layers` residual SAGE blocks + one SAGE layer."""
  input_dim: int
  hidden_dim: int
  output_dim: int
  num_layers: int
  adjacency: np.ndarray
  batch_wide_norm: bool

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if self.num_layers > 0 and self.input_dim != self.hidden_dim:
      raise ValueError(f"SAGE discriminator: residual blocks need input_dim == "
                       f"hidden_dim, got {self.input_dim} and "
                       f"{self.hidden_dim}")
    h = graph.Linear(self.input_dim, name="embed")(x)
    for i in range(self.num_layers):
      out = _SAGELayer(self.hidden_dim, self.adjacency, self.batch_wide_norm,
                       name=f"block{i}_0")(h)
      out = _SAGELayer(self.hidden_dim, self.adjacency, self.batch_wide_norm,
                       name=f"block{i}_1")(out)
      h = h + out
    return _SAGELayer(self.output_dim, self.adjacency, self.batch_wide_norm,
                      name="last")(h)


def _with_encoding(x: Array, reference_exponent: bool) -> Array:
  """Concatenates the joint positional code: `[B, J, C] -> [B, J, 2C]`."""
  code = graph.sinusoidal_joint_encoding(x.shape[-2], x.shape[-1],
                                         reference_exponent)
  code = jnp.broadcast_to(jnp.asarray(code, x.dtype), x.shape)
  return jnp.concatenate([x, code], axis=-1)


class SimpleGCNDiscriminator(nn.Module):
  """`simple_gcn`: embedding, 2 x (GCNConv + ReLU), linear head -> `[B, 1]`."""
  skeleton: skeleton_lib.Skeleton = skeleton_lib.H36M18
  input_dim: int = 128
  hidden_dim: int = 128
  output_dim: int = 128

  @nn.compact
  def __call__(self, joints: Array, train: bool = False) -> Array:
    del train  # No dropout / normalisation.
    _check_joints(joints, self.skeleton, "simple_gcn")
    adj = self.skeleton.adjacency(self_loops=True)
    weights = inverse_bone_length_weights(joints, self.skeleton)
    h = graph.Linear(self.input_dim, name="embed")(joints)
    h = nn.relu(graph.GCNConv(self.hidden_dim, adj, name="gcn0")(h, weights))
    h = nn.relu(graph.GCNConv(self.output_dim, adj, name="gcn1")(h, weights))
    return graph.Linear(1, name="head")(h.reshape(h.shape[0], -1))


class ResGCNDiscriminator(nn.Module):
  """`res_gcn`: GCN with 1 / bone-length edge weights and residual blocks."""
  skeleton: skeleton_lib.Skeleton = skeleton_lib.H36M18
  input_dim: int = 128
  hidden_dim: int = 128
  output_dim: int = 128
  num_layers: int = 2
  use_batch_norm: bool = False
  dropout: float = 0.5

  @nn.compact
  def __call__(self, joints: Array, train: bool = False) -> Array:
    _check_joints(joints, self.skeleton, "res_gcn")
    adj = self.skeleton.adjacency(self_loops=True)
    weights = inverse_bone_length_weights(joints, self.skeleton)
    h = graph.Linear(self.input_dim, name="embed")(joints)
    h = nn.relu(graph.GCNConv(self.hidden_dim, adj, name="gcn_in")(h, weights))
    for i in range(self.num_layers):
      h = _GCNResidual(self.hidden_dim, adj, self.use_batch_norm, self.dropout,
                       name=f"block{i}")(h, weights, train)
    h = nn.relu(graph.GCNConv(self.output_dim, adj, name="gcn_out")(h,
                                                                    weights))
    return graph.Linear(1, name="head")(h.reshape(h.shape[0], -1))


class ResSAGEDiscriminator(nn.Module):
  """`res_sage_gcn`: residual GraphSAGE stack on joint positions."""
  skeleton: skeleton_lib.Skeleton = skeleton_lib.H36M18
  input_dim: int = 128
  hidden_dim: int = 128
  output_dim: int = 128
  num_layers: int = 2
  use_pe: bool = False
  reference_encoding: bool = False
  batch_wide_norm: bool = False

  @nn.compact
  def __call__(self, joints: Array, train: bool = False) -> Array:
    del train  # No dropout / batch statistics.
    _check_joints(joints, self.skeleton, "res_sage_gcn")
    x = (_with_encoding(joints, self.reference_encoding) if self.use_pe
         else joints)
    h = _SAGEStack(self.input_dim, self.hidden_dim, self.output_dim,
                   self.num_layers, self.skeleton.adjacency(self_loops=True),
                   self.batch_wide_norm, name="stack")(x)
    return graph.Linear(1, name="head")(h.reshape(h.shape[0], -1))


class DecoupledSAGEDiscriminator(nn.Module):
  """`res_sage_gcn_decouple`: joint stream + bone stream -> MLP head.

  Bone node j carries x_j - x_parent(j) (zero for the root); the reference
  uses parent - child, which only flips the sign absorbed by the embedding.
  """
  skeleton: skeleton_lib.Skeleton = skeleton_lib.H36M18
  input_dim: int = 128
  hidden_dim: int = 128
  output_dim: int = 128
  num_layers: int = 2
  use_pe: bool = True
  reference_encoding: bool = False
  batch_wide_norm: bool = False
  head_dim: int = 512
  dropout: float = 0.2

  @nn.compact
  def __call__(self, joints: Array, train: bool = False) -> Array:
    _check_joints(joints, self.skeleton, "res_sage_gcn_decouple")
    adj = self.skeleton.adjacency(self_loops=True)
    bones = self.skeleton.bone_vectors(joints)
    feats = []
    for name, x in (("joint", joints), ("bone", bones)):
      if self.use_pe:
        x = _with_encoding(x, self.reference_encoding)
      feats.append(_SAGEStack(self.input_dim, self.hidden_dim,
                              self.output_dim, self.num_layers, adj,
                              self.batch_wide_norm, name=f"{name}_stack")(x))
    h = jnp.concatenate(feats, axis=-1)  # [B, J, 2 * output_dim]
    h = h.reshape(h.shape[0], -1)
    h = nn.relu(graph.Linear(self.head_dim, name="head_hidden")(h))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    return graph.Linear(1, name="head_out")(h)


DISCRIMINATORS: Dict[str, Type[nn.Module]] = {
    "simple_gcn": SimpleGCNDiscriminator,
    "res_gcn": ResGCNDiscriminator,
    "res_sage_gcn": ResSAGEDiscriminator,
    "res_sage_gcn_decouple": DecoupledSAGEDiscriminator,
}

DEFAULT_DISCRIMINATOR = "res_sage_gcn_decouple"


def build_discriminator(name: str = DEFAULT_DISCRIMINATOR,
                        **kwargs) -> nn.Module:
  """Returns the discriminator registered under `name`, built with `kwargs`.

  Args:
    name: one of `DISCRIMINATORS`.
    **kwargs: fields of that discriminator (input_dim, hidden_dim, output_dim,
      num_layers, use_pe, skeleton, ...).

  Raises:
    ValueError: unknown name or field.
  """
  if name not in DISCRIMINATORS:
    raise ValueError(f"Unknown discriminator {name!r}; known: "
                     f"{sorted(DISCRIMINATORS)}")
  cls = DISCRIMINATORS[name]
  try:
    return cls(**kwargs)
  except TypeError as e:
    raise ValueError(f"Discriminator {name!r}: bad arguments {sorted(kwargs)} "
                     f"({e})") from None
