"""Deterministic input pipeline: TFDS splits -> numpy -> per-host batches.

Pose datasets are small enough to hold a split in host memory, which keeps
iteration exactly reproducible: the order of epoch `e` is a permutation
drawn from `(seed, e)`, so a run resumed at step `s` sees the same batches as
an uninterrupted run. Every host iterates the same global order and keeps
its own slice of each global batch (data parallel across hosts); batches are
placed on the device mesh with `jax.make_array_from_process_local_data`.
"""

import importlib
import os
from typing import Any, Dict, Iterator, Optional

import jax
import numpy as np

from xsup.data import fingerprint

Batch = Dict[str, np.ndarray]


def builder_module(name: str):
  """Imports `xsup.data.builders.<name>` (its `Builder` class is the builder)."""
  try:
    module = importlib.import_module(f"xsup.data.builders.{name}")
  except ModuleNotFoundError as e:
    here = os.path.join(os.path.dirname(__file__), "builders")
    known = sorted(
        f[:-3] for f in os.listdir(here) if f.endswith(".py")
        and "\nBuilder = " in open(os.path.join(here, f)).read())
    raise ValueError(f"Unknown dataset {name!r}; known: {known}") from e
  return module


def get_builder(name: str, builder_config: Optional[str] = None,
                data_dir: Optional[str] = None):
  """Instantiates the TFDS builder `name` (config `builder_config`)."""
  cls = builder_module(name).Builder
  kwargs: Dict[str, Any] = {}
  if builder_config:
    kwargs["config"] = builder_config
  if data_dir:
    kwargs["data_dir"] = os.path.expanduser(data_dir)
  return cls(**kwargs)


def load_split(name: str, split: str, builder_config: Optional[str] = None,
               data_dir: Optional[str] = None,
               manual_dir: Optional[str] = None) -> Batch:
  """Prepares (if needed) and reads a whole split into numpy arrays.

  Args:
    name: builder name (module of `xsup.data.builders`).
    split: TFDS split expression, e.g. "train" or "clip_131_01+clip_131_02".
    builder_config: builder config name.
    data_dir: where prepared datasets live (TFDS default when None).
    manual_dir: directory of manually downloaded files for real datasets.
  Returns:
    feature name -> array with a leading example axis (text as `str`).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = fingerprint.prepare_builder(
      get_builder(name, builder_config, data_dir), manual_dir)
  ds = builder.as_dataset(split=split, shuffle_files=False)
  num = sum(1 for _ in ds) if ds.cardinality() < 0 else int(ds.cardinality())
  if num == 0:
    raise ValueError(f"Dataset {name}/{builder_config} split {split!r} is "
                     "empty")
  arrays = tfds.as_numpy(ds.batch(num).take(1))
  out = next(iter(arrays))
  return {k: (np.array([s.decode() for s in v]) if v.dtype == object else v)
          for k, v in out.items()}


class EpochIterator:
  """Reproducible shuffled batches of in-memory arrays, sharded by host.

  Global batch `g` of epoch `e` holds the indices
  `perm_e[g * B:(g + 1) * B]` with `perm_e` drawn from `(seed, e)`; process
  `p` of `P` keeps rows `[p * B/P, (p + 1) * B/P)` of it. The last partial
  batch of an epoch is dropped.
  """

  def __init__(self, arrays: Batch, global_batch_size: int, seed: int,
               shuffle: bool = True, process_index: Optional[int] = None,
               process_count: Optional[int] = None):
    self.arrays = arrays
    self.num_examples = len(next(iter(arrays.values())))
    self.global_batch_size = global_batch_size
    self.seed = seed
    self.shuffle = shuffle
    self.process_index = (jax.process_index() if process_index is None
                          else process_index)
    self.process_count = (jax.process_count() if process_count is None
                          else process_count)
    if global_batch_size % self.process_count:
      raise ValueError(f"Global batch size {global_batch_size} must divide "
                       f"by the number of processes {self.process_count}")
    self.steps_per_epoch = self.num_examples // global_batch_size
    if self.steps_per_epoch == 0:
      raise ValueError(f"Global batch size {global_batch_size} exceeds the "
                       f"{self.num_examples} examples of the split")

  def _order(self, epoch: int) -> np.ndarray:
    if not self.shuffle:
      return np.arange(self.num_examples)
    return np.random.default_rng([self.seed, epoch]).permutation(
        self.num_examples)

  def batch_at(self, step: int) -> Batch:
    """The process-local part of global batch number `step`."""
    epoch, offset = divmod(step, self.steps_per_epoch)
    order = self._order(epoch)
    idx = order[offset * self.global_batch_size:
                (offset + 1) * self.global_batch_size]
    local = self.global_batch_size // self.process_count
    idx = idx[self.process_index * local:(self.process_index + 1) * local]
    return {k: v[idx] for k, v in self.arrays.items()}

  def iterate(self, start_step: int = 0) -> Iterator[Batch]:
    step = start_step
    while True:
      yield self.batch_at(step)
      step += 1


def numeric(batch: Batch) -> Batch:
  """Drops text features (they cannot live on devices)."""
  return {k: v for k, v in batch.items()
          if np.issubdtype(np.asarray(v).dtype, np.number)
          or np.asarray(v).dtype == bool}


def shard_batch(batch: Batch, mesh: jax.sharding.Mesh,
                axis: str = "data") -> Dict[str, jax.Array]:
  """Places a process-local numeric batch on `mesh`, split along `axis`."""
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(axis))
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in numeric(batch).items()}
