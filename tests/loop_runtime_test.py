"""Runtime behaviour of the shared loop: the train state is donated to the
step, and the persistent compilation cache serves a repeated run."""

import os

import jax
import pytest

import model_fixtures
from xsup.data import pipeline
from xsup.train import lifting as lifting_train
from xsup.train import loop
from xsup.train import state as state_lib


def _tiny_teacher(steps: int):
  c = model_fixtures.tiny_lifting_config("teacher", steps)
  c.log_every_steps = 1
  c.num_devices = 1
  return c


def _batch(task, step):
  if hasattr(task, "batch_at"):
    return task.batch_at(step)
  return task.iterator.batch_at(step)


def test_train_step_donates_the_state(lifting_arrays):
  train, _ = lifting_arrays
  task = lifting_train.LiftingTask(_tiny_teacher(2), train_data=train)
  state, _, shardings = state_lib.create_sharded(
      task.init_state, jax.random.PRNGKey(0), task.mesh)
  step = loop.jit_train_step(task, shardings)
  batch = pipeline.shard_batch(_batch(task, 0), task.mesh)
  old_leaves = jax.tree.leaves(state)
  new_state, _ = step(state, batch, jax.random.PRNGKey(1), {})
  # Every buffer of the old state was handed to the new one.
  assert all(leaf.is_deleted() for leaf in old_leaves)
  assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(new_state))
  # The batch and the key are not donated.
  assert not any(a.is_deleted() for a in batch.values())


class _CacheEvents:
  """Counts the persistent cache's hits and misses while alive."""

  def __init__(self):
    self.hits = self.misses = 0
    jax.monitoring.register_event_listener(self._event)

  def _event(self, event, **kwargs):
    del kwargs
    if event == "/jax/compilation_cache/cache_hits":
      self.hits += 1
    elif event == "/jax/compilation_cache/cache_misses":
      self.misses += 1


@pytest.fixture
def cache_every_program():
  """Caches programs however fast they compile (the default threshold of
  1 s would skip this tiny model's); no cache directory set beforehand."""
  name = "jax_persistent_cache_min_compile_time_secs"
  old = getattr(jax.config, name)
  assert not jax.config.jax_compilation_cache_dir
  jax.config.update(name, 0.0)
  yield
  jax.config.update(name, old)


def test_repeated_run_in_the_workdir_hits_the_cache(tmp_path, lifting_arrays,
                                                    cache_every_program):
  del cache_every_program
  train, _ = lifting_arrays
  workdir = str(tmp_path / "run")
  events = _CacheEvents()
  loop.train_and_evaluate(
      lifting_train.LiftingTask(_tiny_teacher(2), train_data=train),
      _tiny_teacher(2), workdir)
  cache_dir = os.path.join(workdir, "compilation_cache")
  assert os.listdir(cache_dir)  # The first run wrote its programs.
  assert not jax.config.jax_compilation_cache_dir  # Restored after the run.
  first_hits = events.hits
  # A second run resumes in the same workdir for two more steps: the same
  # step (and evaluation) programs come from the cache.
  state = loop.train_and_evaluate(
      lifting_train.LiftingTask(_tiny_teacher(4), train_data=train),
      _tiny_teacher(4), workdir)
  assert int(state.step) == 4
  assert events.hits > first_hits

  # Switched off: no cache directory, no hits.
  off = _tiny_teacher(2)
  off.compilation_cache = False
  other = str(tmp_path / "off")
  hits = events.hits
  loop.train_and_evaluate(lifting_train.LiftingTask(off, train_data=train),
                          off, other)
  assert not os.path.exists(os.path.join(other, "compilation_cache"))
  assert events.hits == hits
