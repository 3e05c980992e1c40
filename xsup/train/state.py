"""Train state pytrees and abstract-first sharded initialisation."""

from typing import Any, Callable

import flax
import jax
import numpy as np

PyTree = Any


@flax.struct.dataclass
class TrainState:
  """Everything a step updates.

  Attributes:
    step: scalar int32, number of updates applied.
    params: trainable parameters (a dict; several networks are sub-dicts).
    batch_stats: BatchNorm running statistics (same layout as `params`).
    opt_state: optimiser state (a dict of optax states for several
      optimisers).
  """
  step: jax.Array
  params: PyTree
  batch_stats: PyTree
  opt_state: PyTree


def replicated(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def abstract_sharded(init_fn: Callable[[jax.Array], PyTree], key: jax.Array,
                     mesh: jax.sharding.Mesh):
  """`(abstract_state, shardings)` of `init_fn(key)` without computing it
  (`jax.eval_shape`); the state is replicated over `mesh`."""
  abstract = jax.eval_shape(init_fn, key)
  shardings = jax.tree.map(lambda _: replicated(mesh), abstract)
  return abstract, shardings


def create_sharded(init_fn: Callable[[jax.Array], PyTree], key: jax.Array,
                   mesh: jax.sharding.Mesh):
  """Initialises `init_fn(key)` directly where it lives (replicated).

  `jax.eval_shape` gives the abstract state without computing it; the
  jitted init then writes parameters straight into their shardings.

  Returns:
    `(state, abstract_state, shardings)`.
  """
  abstract, shardings = abstract_sharded(init_fn, key, mesh)
  state = jax.jit(init_fn, out_shardings=shardings)(key)
  return state, abstract, shardings


def tree_norm(tree: PyTree) -> jax.Array:
  """Global L2 norm of a pytree of arrays."""
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return np.float32(0.0)
  return jax.numpy.sqrt(sum(jax.numpy.sum(jax.numpy.square(x))
                            for x in leaves))
