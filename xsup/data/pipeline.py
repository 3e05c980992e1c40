"""Deterministic streaming input: sources -> grain -> per-host batches.

Global batch `g` of epoch `e` holds the examples `perm_e[g*B:(g+1)*B]`, with
`perm_e` a permutation drawn from `(seed, e)` (`GlobalBatchSampler`); process
`p` of `P` reads only rows `[p*B/P, (p+1)*B/P)` of it. So a batch depends on
nothing but the global step: not on the number of processes, of grain
workers, or on where a run was resumed. The last partial batch of an epoch
is dropped.

A task describes the batch of a global step as a picklable function
(`SourceBatches` for one source); `StepIterator` runs it through grain (reads,
decoding and augmentation in `num_workers` worker processes, prefetch) and
is checkpointed with grain's orbax handler: its state is the next step plus
the identity of the data (dataset, examples, global batch size, seed), which
a restore checks. Evaluation streams fixed-order, padded chunks
(`eval_chunks`). Batches reach the device mesh through `shard_batch`.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Tuple

import jax
import numpy as np

from xsup.data import sources

Batch = sources.Batch

# Steps addressable by one iterator (far beyond any run).
_MAX_STEPS = 2 ** 40


def default_num_workers() -> int:
  """Grain worker processes for streamed data: half the CPUs, 1 to 8."""
  return int(min(8, max(1, (os.cpu_count() or 2) // 2)))


def resolve_num_workers(requested: Optional[int], source) -> int:
  """`config.data_workers`: None or < 0 = automatic (0 for in-memory
  sources, `default_num_workers()` for streamed ones)."""
  if requested is not None and int(requested) >= 0:
    return int(requested)
  if isinstance(source, sources.ArraySource):
    return 0
  return default_num_workers()


class GlobalBatchSampler:
  """Which examples process `p` reads at each global step."""

  def __init__(self, num_examples: int, global_batch_size: int, seed: int,
               shuffle: bool = True, process_index: Optional[int] = None,
               process_count: Optional[int] = None,
               setting: str = "config.batch_size"):
    self.num_examples = int(num_examples)
    self.global_batch_size = int(global_batch_size)
    self.seed = int(seed)
    self.shuffle = shuffle
    self.process_index = (jax.process_index() if process_index is None
                          else int(process_index))
    self.process_count = (jax.process_count() if process_count is None
                          else int(process_count))
    if self.global_batch_size <= 0:
      raise ValueError(f"{setting}={global_batch_size} must be positive")
    if self.global_batch_size % self.process_count:
      raise ValueError(
          f"{setting}={global_batch_size} (global batch) must divide by the "
          f"{self.process_count} processes of this run; choose a multiple "
          f"of {self.process_count}")
    self.steps_per_epoch = self.num_examples // self.global_batch_size
    if self.steps_per_epoch == 0:
      raise ValueError(f"{setting}={global_batch_size} exceeds the "
                       f"{self.num_examples} examples of the split")
    self._cached: Tuple[int, Optional[np.ndarray]] = (-1, None)

  @property
  def local_batch_size(self) -> int:
    return self.global_batch_size // self.process_count

  def order(self, epoch: int) -> np.ndarray:
    """`[N]` example order of `epoch` (the identity without shuffling)."""
    if not self.shuffle:
      return np.arange(self.num_examples)
    if self._cached[0] != epoch:
      self._cached = (epoch, np.random.default_rng(
          [self.seed, epoch]).permutation(self.num_examples))
    return self._cached[1]

  def global_indices(self, step: int) -> np.ndarray:
    """`[B]` example indices of global batch `step`."""
    epoch, offset = divmod(int(step), self.steps_per_epoch)
    b = self.global_batch_size
    return self.order(epoch)[offset * b:(offset + 1) * b]

  def indices(self, step: int) -> np.ndarray:
    """`[B / P]` indices this process reads at global step `step`."""
    local = self.local_batch_size
    start = self.process_index * local
    return self.global_indices(step)[start:start + local]

  def __getstate__(self):
    state = dict(self.__dict__)
    state["_cached"] = (-1, None)  # Workers draw their own copy.
    return state


class SourceBatches:
  """Picklable `step -> process-local batch` of one source and sampler."""

  def __init__(self, source, sampler: GlobalBatchSampler,
               transform: Optional[Callable[[Batch], Batch]] = None):
    self.source = source
    self.sampler = sampler
    self.transform = transform

  def __call__(self, step: int) -> Batch:
    batch = self.source.read(self.sampler.indices(step))
    return self.transform(batch) if self.transform else batch

  def identity(self) -> Dict[str, Any]:
    """What a restored iterator state must match."""
    return {"dataset": self.source.description,
            "num_examples": self.sampler.num_examples,
            "global_batch_size": self.sampler.global_batch_size,
            "seed": self.sampler.seed, "shuffle": self.sampler.shuffle}


def training_iterator(batches, source, start_step: int,
                      data_workers: Optional[int] = None,
                      data_prefetch: int = 2) -> "StepIterator":
  """`StepIterator` of a task's step batches (`batches`: picklable
  `step -> batch` with an `identity()`), with `data_workers` resolved for
  `source` (`resolve_num_workers`)."""
  return StepIterator(batches, batches.identity(), start_step,
                      num_workers=resolve_num_workers(data_workers, source),
                      prefetch=int(data_prefetch))


def _allow_grain_workers() -> None:
  """Grain reads its settings from absl flags; outside an absl program
  (tests, notebooks) they are unparsed, so mark them parsed (defaults)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


class IteratorStateError(ValueError):
  """A checkpointed input-pipeline state does not fit this run."""


class StepIterator:
  """Batches of global steps `start, start + 1, ...` through grain.

  Args:
    batch_fn: picklable `step -> batch` (e.g. `SourceBatches`).
    identity: JSON-serialisable description of the data that a restored
      state must match (dataset, examples, global batch size, seed, ...).
    start_step: first global step.
    num_workers: grain worker processes (0: read in this process, with a
      prefetch thread).
    prefetch: batches read ahead (per worker with workers).

  State (`get_state`/`set_state`, bytes of JSON, as grain's checkpoint
  handler `grain.checkpoint.CheckpointSave/Restore` expects): the next step
  and `identity`. The batch of a step depends only on the step, so the same
  state restores with any number of workers.
  """

  def __init__(self, batch_fn: Callable[[int], Batch],
               identity: Dict[str, Any], start_step: int = 0,
               num_workers: int = 0, prefetch: int = 2):
    self.batch_fn = batch_fn
    self.identity = json.loads(json.dumps(identity))
    self.num_workers = int(num_workers)
    self.prefetch = int(prefetch)
    self.next_step = int(start_step)
    self._it = None

  def _start(self):
    import grain  # pylint: disable=g-import-not-at-top
    ds = grain.MapDataset.range(self.next_step, _MAX_STEPS).map(self.batch_fn)
    if self.num_workers > 0:
      _allow_grain_workers()
      ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=0,
                                                prefetch_buffer_size=0))
      ds = ds.mp_prefetch(grain.MultiprocessingOptions(
          num_workers=self.num_workers,
          per_worker_buffer_size=max(1, self.prefetch)))
    else:
      ds = ds.to_iter_dataset(grain.ReadOptions(
          num_threads=1 if self.prefetch > 0 else 0,
          prefetch_buffer_size=self.prefetch))
    self._it = iter(ds)

  def __iter__(self) -> "StepIterator":
    return self

  def __next__(self) -> Batch:
    if self._it is None:
      self._start()
    batch = next(self._it)
    self.next_step += 1
    return batch

  def start_prefetch(self) -> None:
    """Starts reading ahead (grain's handler calls it after a restore)."""
    if self._it is None:
      self._start()

  def close(self) -> None:
    if self._it is not None:
      close = getattr(self._it, "close", None)
      if close:
        close()
      self._it = None

  def get_state(self) -> bytes:
    return json.dumps({"next_step": self.next_step,
                       "identity": self.identity}, sort_keys=True).encode()

  def set_state(self, state: bytes) -> None:
    """Repositions at a saved state; raises `IteratorStateError` when it
    was saved for other data, batch size or seed."""
    try:
      saved = json.loads(state)
      next_step = int(saved["next_step"])
      saved_identity = saved["identity"]
    except (ValueError, KeyError, TypeError) as e:
      raise IteratorStateError(
          f"Unreadable input-pipeline state {state[:200]!r}") from e
    if saved_identity != self.identity:
      diff = sorted(k for k in set(saved_identity) | set(self.identity)
                    if saved_identity.get(k) != self.identity.get(k))
      detail = "; ".join(f"{k}: checkpoint {saved_identity.get(k)!r}, this "
                         f"run {self.identity.get(k)!r}" for k in diff)
      raise IteratorStateError(
          "The checkpoint's input pipeline belongs to other data or "
          f"settings ({detail}). Resume with the settings it was trained "
          "with, or start in a new workdir (use config.init_checkpoint to "
          "start from its parameters).")
    self.close()
    self.next_step = next_step


def eval_chunks(source, chunk_size: int,
                transform: Optional[Callable[[Batch], Batch]] = None,
                prefetch: int = 1) -> Iterator[Tuple[Batch, int]]:
  """The whole of `source` in order, in chunks of exactly `chunk_size`.

  Yields `(batch, num_valid)`: the last chunk is padded by repeating its
  last example (so one compiled program serves every chunk); only its first
  `num_valid` rows are real. At most `prefetch + 1` chunks are in memory.
  """
  import grain  # pylint: disable=g-import-not-at-top
  n, chunk = len(source), int(chunk_size)
  if chunk <= 0:
    raise ValueError(f"Evaluation chunk size {chunk_size} must be positive")

  num_chunks = -(-n // chunk)
  ds = grain.MapDataset.range(num_chunks).map(
      _ChunkReader(source, chunk, transform))
  ds = ds.to_iter_dataset(grain.ReadOptions(
      num_threads=1 if prefetch > 0 else 0, prefetch_buffer_size=prefetch))
  for batch in ds:
    valid = int(batch.pop("_num_valid"))
    yield batch, valid


class _ChunkReader:
  """Picklable `chunk index -> padded chunk` of `eval_chunks`."""

  def __init__(self, source, chunk: int, transform):
    self.source, self.chunk, self.transform = source, chunk, transform

  def __call__(self, i: int) -> Batch:
    n = len(self.source)
    idx = np.arange(i * self.chunk, min(n, (i + 1) * self.chunk))
    valid = len(idx)
    idx = np.concatenate([idx, np.full(self.chunk - valid, idx[-1])])
    batch = self.source.read(idx)
    if self.transform:
      batch = self.transform(batch)
    batch["_num_valid"] = valid
    return batch


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
