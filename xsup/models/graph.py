"""Graph layers on fixed skeletons (dense adjacency, no graph library).

Shared by the lifting student (semantic graph convolution + non-local block)
and by the pose discriminators (GCN / GraphSAGE convolutions + a graph layer
norm). Node features have the joint axis second to last: `[..., J, C]`; an
adjacency is a `[J, J]` 0/1 matrix (numpy, fixed at construction) where
`A[i, j] != 0` means node `i` receives from node `j`.

Layers:
  * `SemGraphConv`: semantic graph convolution (learned softmax edge weights
    over the adjacency, separate kernels for self and neighbours).
  * `GraphNonLocal`: non-local (concatenation form) block over joint groups.
  * `GCNConv`: D^-1/2 (A + I) D^-1/2 X W + b with optional edge weights.
  * `SAGEConv`: mean aggregation over neighbours plus a root term.
  * `GraphLayerNorm`: layer norm over the nodes and channels of each graph.
  * `Linear`: dense layer with the PyTorch default initialisation.
  * `sinusoidal_joint_encoding`: fixed per-joint positional code.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# Logit given to entries outside the adjacency before the softmax: exp() of it
# underflows to exactly 0 in float32.
_MASKED_LOGIT = -1e30

# He (fan-in, gain sqrt 2) normal initialisation, not truncated.
_he_normal = nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def _as_adjacency(adjacency: Any, where: str) -> np.ndarray:
  """Checks a `[J, J]` adjacency and returns it as a float32 0/1 matrix."""
  adj = np.asarray(adjacency)
  if adj.ndim != 2 or adj.shape[0] != adj.shape[1]:
    raise ValueError(f"{where}: adjacency must be a square [J, J] matrix, "
                     f"got shape {adj.shape}")
  return (adj != 0).astype(np.float32)


def freeze_adjacency(adjacency: Any) -> Optional[Tuple[Tuple[int, ...], ...]]:
  """`[J, J]` array-like -> nested tuple of 0/1 ints (hashable), None kept."""
  if adjacency is None:
    return None
  adj = np.asarray(adjacency)
  if adj.ndim != 2:
    return adjacency  # Rejected with a clear message when the layer runs.
  return tuple(tuple(int(v != 0) for v in row) for row in adj)


def freeze_groups(groups: Any) -> Optional[Tuple[Tuple[int, ...], ...]]:
  """Joint groups -> nested tuple of ints (hashable), None kept."""
  if groups is None:
    return None
  return tuple(tuple(int(j) for j in g) for g in groups)


def _check_nodes(x: Array, num_nodes: int, where: str):
  if x.ndim < 2 or x.shape[-2] != num_nodes:
    raise ValueError(f"{where}: expected node features [..., {num_nodes}, C] "
                     f"(joints on axis -2), got shape {tuple(x.shape)}")


def _uniform(bound: float):
  """Initialiser U(-bound, bound)."""
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


def mix_joints(weights: Array, x: Array) -> Array:
  """`sum_j weights[i, j] x[..., j, :]`: `[J, J]`, `[..., J, C]` -> same.

  A batched matrix product over the flattened leading axes (the `[J, J]`
  weights broadcast to each pose). An einsum over the joint axis would make
  XLA transpose the activations to `[J, ...]` and back, which costs several
  times the product itself on CPU.
  """
  lead = x.shape[:-2]
  flat = x.reshape((-1,) + x.shape[-2:])
  w = jnp.broadcast_to(weights.astype(x.dtype),
                       (flat.shape[0],) + weights.shape)
  out = jax.lax.dot_general(w, flat, (((2,), (1,)), ((0,), (0,))))
  return out.reshape(lead + out.shape[-2:])


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def group_max(x: Array, keys: Tuple[Tuple[int, ...], ...]) -> Array:
  """Max over static sets of joints: `[..., J, C]` -> `[..., M, C]`.

  Entry m is `max_{j in keys[m]} x[..., j, :]`. Written with slices, so
  XLA fuses the whole pooling and its gradient into one pass each (a
  gather and its scatter-add gradient are slow on CPU). Ties share the
  gradient equally, as `jnp.max`.

  Args:
    x: `[..., J, C]`.
    keys: M non-empty tuples of joint indices in 0..J-1.

  Returns:
    `[..., M, C]`.
  """
  return jnp.stack([functools.reduce(jnp.maximum, [x[..., j, :] for j in k])
                    for k in keys], axis=-2)


def _group_max_fwd(x, keys):
  out = group_max(x, keys)
  return out, (x, out)


def _group_max_bwd(keys, residuals, grad):
  x, out = residuals
  hits = [[(x[..., j, :] == out[..., m, :]).astype(grad.dtype) for j in k]
          for m, k in enumerate(keys)]
  share = [grad[..., m, :] / sum(h) for m, h in enumerate(hits)]
  parts = [jnp.zeros_like(x[..., 0, :]) for _ in range(x.shape[-2])]
  for m, k in enumerate(keys):
    for j, hit in zip(k, hits[m]):
      parts[j] = parts[j] + share[m] * hit
  return (jnp.stack(parts, axis=-2),)


group_max.defvjp(_group_max_fwd, _group_max_bwd)


def sinusoidal_joint_encoding(num_joints: int, dim: int,
                              reference_exponent: bool = False) -> np.ndarray:
  """Fixed sinusoidal code of each joint index.

  Default (transformer style): channels 2k and 2k+1 share the frequency
  10000^(-2k/dim); even channels are sin(i * f), odd channels cos(i * f).

  Args:
    num_joints: J.
    dim: number of channels.
    reference_exponent: use frequency 10000^(-2c/dim) with c the channel index
      itself (the X-as-Supervision code); with dim = 3 only channel 0 then
      varies noticeably over 18 joints.

  Returns:
    `[J, dim]` float32.
  """
  if num_joints <= 0 or dim <= 0:
    raise ValueError(f"sinusoidal_joint_encoding: num_joints and dim must be "
                     f"positive, got {num_joints}, {dim}")
  idx = np.arange(num_joints, dtype=np.float64)[:, None]
  chan = np.arange(dim)
  expo = 2 * chan if reference_exponent else 2 * (chan // 2)
  angle = idx / np.power(10000.0, expo / dim)[None, :]
  code = np.where(chan % 2 == 0, np.sin(angle), np.cos(angle))
  return code.astype(np.float32)


class Linear(nn.Module):
  """Dense layer `[..., C_in] -> [..., features]` with PyTorch's default init.

  Kernel U(-1/sqrt(C_in), 1/sqrt(C_in)) (kaiming-uniform with a = sqrt 5),
  bias U(-1/sqrt(C_in), 1/sqrt(C_in)).
  """
  features: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: Array) -> Array:
    bound = 1.0 / math.sqrt(x.shape[-1])
    kernel = self.param("kernel", _uniform(bound), (x.shape[-1], self.features))
    y = x @ kernel
    if self.use_bias:
      y = y + self.param("bias", _uniform(bound), (self.features,))
    return y


class SemGraphConv(nn.Module):
  """Semantic graph convolution `[..., J, C_in] -> [..., J, features]`.

  A learned logit per nonzero adjacency entry (row-major order of
  `np.nonzero(adjacency)`, init 1) is turned into edge weights M by a softmax
  over each row restricted to the adjacency. Then
  `out = diag(M) (x W0) + (M - diag(M)) (x W1) + b`.

  Attributes:
    features: output channels.
    adjacency: `[J, J]` 0/1, self loops included; every row needs an entry.
    reference_init: initialise the `[2, C_in, C_out]` kernel with PyTorch's
      fans of a 3-d tensor (fan_in = C_in * C_out, fan_out = 2 * C_out), as the
      ITES code does; default uses the fans of each `[C_in, C_out]` matrix.
      Either way xavier-uniform with gain 1.414.
  """
  features: int
  adjacency: Any
  reference_init: bool = False

  def __post_init__(self):
    # Store the adjacency as nested tuples so that the module stays hashable.
    object.__setattr__(self, "adjacency", freeze_adjacency(self.adjacency))
    super().__post_init__()

  @nn.compact
  def __call__(self, x: Array) -> Array:
    adj = _as_adjacency(self.adjacency, "SemGraphConv")
    if not np.all(adj.sum(axis=1) > 0):
      raise ValueError("SemGraphConv: every adjacency row needs a nonzero "
                       "entry (add self loops)")
    num = adj.shape[0]
    _check_nodes(x, num, "SemGraphConv")
    c_in, c_out = x.shape[-1], self.features
    if self.reference_init:
      fan_in, fan_out = c_in * c_out, 2 * c_out
    else:
      fan_in, fan_out = c_in, c_out
    bound = 1.414 * math.sqrt(6.0 / (fan_in + fan_out))
    kernel = self.param("kernel", _uniform(bound), (2, c_in, c_out))
    rows, cols = np.nonzero(adj)
    logits = self.param("edge_logits", nn.initializers.ones, (rows.size,))
    bias = self.param("bias", _uniform(1.0 / math.sqrt(c_out)), (c_out,))

    dense = jnp.full((num, num), _MASKED_LOGIT, logits.dtype)
    dense = dense.at[rows, cols].set(logits)
    weights = jax.nn.softmax(dense, axis=-1)
    eye = jnp.eye(num, dtype=weights.dtype)
    self_w = jnp.diagonal(weights)[:, None]
    neigh_w = weights * (1.0 - eye)
    # The joints are mixed on the narrower side (input or output channels).
    if c_in < c_out:
      out = (self_w * x) @ kernel[0] + mix_joints(neigh_w, x) @ kernel[1]
    else:
      out = self_w * (x @ kernel[0]) + mix_joints(neigh_w, x @ kernel[1])
    return out + bias


def _pointwise(features: int, name: str) -> nn.Dense:
  """1x1 map of the non-local block: He-normal kernel, zero bias."""
  return nn.Dense(features, kernel_init=_he_normal,
                  bias_init=nn.initializers.zeros, name=name)


def _check_groups(groups: Sequence[Sequence[int]]) -> Tuple[Tuple[int, ...],
                                                            ...]:
  groups = tuple(tuple(int(j) for j in g) for g in groups)
  if not groups or any(len(g) == 0 for g in groups):
    raise ValueError(f"GraphNonLocal: groups must be non-empty joint-index "
                     f"tuples, got {groups}")
  order = sorted(j for g in groups for j in g)
  if order != list(range(len(order))):
    raise ValueError(f"GraphNonLocal: groups must contain each joint "
                     f"0..J-1 exactly once, got {groups}")
  return groups


class _PointwiseParams(nn.Module):
  """The parameters of a `_pointwise` map (same names, shapes and init),
  returned instead of applied, so several maps can share one product."""
  features: int

  @nn.compact
  def __call__(self, in_features: int) -> Tuple[Array, Array]:
    kernel = self.param("kernel", _he_normal, (in_features, self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return kernel, bias


class GraphNonLocal(nn.Module):
  """Non-local block over joints ordered by groups, `[..., J, C] -> same`.

  Joints are reordered group by group; theta, phi, g are 1x1 maps to
  `inter_features` channels; keys/values (phi, g) are max-pooled; the pairwise
  weight is f_ij = ReLU(w^T [theta_i; phi_j]) / M with M the number of keys;
  y = f g; out = x + BatchNorm(W y) (BatchNorm scale initialised to 0, so the
  block starts as the identity), returned in the original joint order.

  Pooling:
    * default: one key/value per group (max over the group's joints), so a
      singleton group still contributes.
    * `reference_pooling=True`: windows of len(groups[0]) consecutive joints in
      the grouped order, floor division (ITES). With the H36M-17 groups the
      last, single-joint group (joint 9) is then never a key/value.

  Computation: every map but the pooling acts on each joint alone, so the
  block runs in the original joint order and only the pooling reads joints
  by group (`group_max`). theta enters only through w_theta^T theta_i, a
  single channel x_i (W_theta w_theta) + b_theta . w_theta; phi and g share
  one matrix product. The parameters are those of the reordering
  formulation above (`theta`, `phi`, `g`, `concat_kernel`, `out`,
  `out_bn`).

  Attributes:
    groups: sequence of joint-index tuples covering 0..J-1 once.
    inter_features: channels of theta/phi/g; default C // 2.
    reference_pooling: reproduce the fixed-window pooling (see above).
    momentum, epsilon: BatchNorm (PyTorch defaults 0.1 / 1e-5).
  """
  groups: Sequence[Sequence[int]]
  inter_features: Optional[int] = None
  reference_pooling: bool = False
  momentum: float = 0.9
  epsilon: float = 1e-5

  def __post_init__(self):
    object.__setattr__(self, "groups", freeze_groups(self.groups))
    super().__post_init__()

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    groups = _check_groups(self.groups)
    num = sum(len(g) for g in groups)
    _check_nodes(x, num, "GraphNonLocal")
    channels = x.shape[-1]
    inter = self.inter_features or channels // 2
    if inter <= 0:
      raise ValueError(f"GraphNonLocal: inter_features must be positive, got "
                       f"{inter} for {channels} input channels")
    keys = self.key_sets(groups)

    theta_k, theta_b = _PointwiseParams(inter, name="theta")(channels)
    phi_k, phi_b = _PointwiseParams(inter, name="phi")(channels)
    g_k, g_b = _PointwiseParams(inter, name="g")(channels)
    proj = self.param("concat_kernel", _he_normal, (2 * inter, 1))[:, 0]
    proj_q, proj_k = proj[:inter], proj[inter:]
    # w_theta^T theta_i, one channel: [..., J].
    score_q = x @ (theta_k @ proj_q) + theta_b @ proj_q
    kernel = jnp.concatenate([phi_k, g_k], axis=1)  # [C, 2 inter]
    bias = jnp.concatenate([phi_b, g_b])
    pooled = group_max(x @ kernel + bias, keys)  # [..., M, 2 inter]
    phi, g = pooled[..., :inter], pooled[..., inter:]
    score_k = phi @ proj_k  # [..., M]
    f = jax.nn.relu(score_q[..., :, None] + score_k[..., None, :])
    f = f / len(keys)
    y = jnp.matmul(f, g)  # [..., J, inter]

    w_y = _pointwise(channels, "out")(y)
    w_y = nn.BatchNorm(use_running_average=not train, momentum=self.momentum,
                       epsilon=self.epsilon, scale_init=nn.initializers.zeros,
                       name="out_bn")(w_y)
    return x + w_y

  def key_sets(self, groups) -> Tuple[Tuple[int, ...], ...]:
    """The joints max-pooled into each key/value (M tuples)."""
    if not self.reference_pooling:
      return groups
    order = [j for g in groups for j in g]
    window = len(groups[0])
    return tuple(tuple(order[m * window:(m + 1) * window])
                 for m in range(len(order) // window))


class GCNConv(nn.Module):
  """Graph convolution `[..., J, C_in] -> [..., J, features]` (Kipf & Welling).

  With `Aw = adjacency * edge_weights` (edge weights default 1) plus a weight
  1 self loop on every node that has none, out = D^-1/2 Aw D^-1/2 (x W) + b,
  D = diag(row sums of Aw). Self loops already in `adjacency` are kept with
  their weight, not doubled (as torch_geometric's GCNConv).

  Attributes:
    features: output channels.
    adjacency: `[J, J]` 0/1, with or without self loops.
    add_self_loops: add the missing self loops (default True).
    use_bias: add a bias (init 0; kernel glorot-uniform).
  """
  features: int
  adjacency: Any
  add_self_loops: bool = True
  use_bias: bool = True

  def __post_init__(self):
    # Store the adjacency as nested tuples so that the module stays hashable.
    object.__setattr__(self, "adjacency", freeze_adjacency(self.adjacency))
    super().__post_init__()

  @nn.compact
  def __call__(self, x: Array, edge_weights: Optional[Array] = None) -> Array:
    """Applies the layer.

    Args:
      x: `[..., J, C_in]`.
      edge_weights: optional `[J, J]` or `[..., J, J]` weights of the adjacency
        entries (e.g. inverse bone lengths); entries outside the adjacency are
        ignored.

    Returns:
      `[..., J, features]`.
    """
    adj = _as_adjacency(self.adjacency, "GCNConv")
    num = adj.shape[0]
    _check_nodes(x, num, "GCNConv")
    weights = jnp.asarray(adj, x.dtype)
    if edge_weights is not None:
      if edge_weights.shape[-2:] != (num, num):
        raise ValueError(f"GCNConv: edge_weights must be [..., {num}, {num}], "
                         f"got shape {tuple(edge_weights.shape)}")
      weights = weights * edge_weights
    if self.add_self_loops:
      missing = (np.diag(adj) == 0).astype(np.float32)
      weights = weights + jnp.asarray(np.diag(missing), x.dtype)
    deg = jnp.sum(weights, axis=-1)
    inv_sqrt = jnp.where(deg > 0, jax.lax.rsqrt(jnp.where(deg > 0, deg, 1.0)),
                         0.0)
    norm = inv_sqrt[..., :, None] * weights * inv_sqrt[..., None, :]
    kernel = self.param("kernel", nn.initializers.xavier_uniform(),
                        (x.shape[-1], self.features))
    out = jnp.einsum("...ij,...jc->...ic", norm, x @ kernel)
    if self.use_bias:
      out = out + self.param("bias", nn.initializers.zeros, (self.features,))
    return out


class SAGEConv(nn.Module):
  """GraphSAGE convolution, mean aggregation: `[..., J, C_in] -> [..., J, F]`.

  out_i = W_l mean_{j: A_ij != 0} x_j + b + W_r x_i, as torch_geometric's
  SAGEConv(aggr="mean", root_weight=True). With self loops in the adjacency
  the mean includes the node itself. A node without neighbours aggregates 0.

  Attributes:
    features: output channels F.
    adjacency: `[J, J]` 0/1.
  """
  features: int
  adjacency: Any

  def __post_init__(self):
    # Store the adjacency as nested tuples so that the module stays hashable.
    object.__setattr__(self, "adjacency", freeze_adjacency(self.adjacency))
    super().__post_init__()

  @nn.compact
  def __call__(self, x: Array) -> Array:
    adj = _as_adjacency(self.adjacency, "SAGEConv")
    _check_nodes(x, adj.shape[0], "SAGEConv")
    deg = adj.sum(axis=1, keepdims=True)
    mean_op = jnp.asarray(adj / np.maximum(deg, 1.0), x.dtype)
    mean = jnp.einsum("ij,...jc->...ic", mean_op, x)
    return (Linear(self.features, name="lin_neighbours")(mean) +
            Linear(self.features, use_bias=False, name="lin_root")(x))


class GraphLayerNorm(nn.Module):
  """Layer norm over the nodes and channels of each graph, `[..., J, C]`.

  Default: each pose (all leading axes kept) is normalised by its own mean and
  variance over its J x C entries, (x - mean) / sqrt(var + eps), then a
  per-channel scale (init 1) and bias (init 0). A pose's output never depends
  on the other poses of the batch.

  `batch_wide=True` reproduces torch_geometric's LayerNorm called without a
  batch vector (the X-as-Supervision discriminators): one mean and one std
  over the whole input tensor, (x - mean) / (std + eps); then one pose's
  output depends on the rest of the batch.
  """
  epsilon: float = 1e-5
  batch_wide: bool = False

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if x.ndim < 2:
      raise ValueError(f"GraphLayerNorm: expected [..., J, C], got shape "
                       f"{tuple(x.shape)}")
    if self.batch_wide:
      centred = x - jnp.mean(x)
      out = centred / (jnp.sqrt(jnp.mean(centred**2)) + self.epsilon)
    else:
      mean = jnp.mean(x, axis=(-2, -1), keepdims=True)
      centred = x - mean
      var = jnp.mean(centred**2, axis=(-2, -1), keepdims=True)
      out = centred * jax.lax.rsqrt(var + self.epsilon)
    scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
    bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
    return out * scale + bias
