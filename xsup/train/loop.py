"""The shared training loop: mesh, checkpoints, metrics, resume, NaN guard.

A method supplies a `Task` (its state initialiser, its jit-able step, its data
and its evaluator); this module runs it the same way for every method:

* a 1-D `("data",)` mesh over all devices of all hosts; batches are split
  along it and the state is replicated (data parallelism);
* abstract-first initialisation, a jitted step with donated state;
* per-step randomness `fold_in(base_key, step)`, so a resumed run draws the
  same numbers as an uninterrupted one;
* orbax checkpoints under `<workdir>/checkpoints/` (resume order: workdir,
  then `config.init_checkpoint`, then from scratch; the newest intact step
  of each, `xsup.train.checkpoints`); a resumed run drops the metrics
  records past its step and writes a missing final evaluation;
* clu writers (TensorBoard) and `<workdir>/metrics.jsonl`, progress and
  evaluation lines on the console (`xsup.train.report`), plus
  the task's image summaries every `config.image_every_steps` steps;
* a stop with a clear message on non-finite losses or gradients, before any
  checkpoint of the broken state is written.
"""

import abc
import contextlib
import json
import os
import time
from typing import Any, Dict, Iterator, Optional, Tuple

from absl import logging
from grain import checkpoint as grain_checkpoint
import jax
from jax.experimental.compilation_cache import compilation_cache as cache_lib
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from xsup.data import pipeline
from xsup.train import checkpoints
from xsup.train import report
from xsup.train import state as state_lib

Metrics = Dict[str, jax.Array]


def _clu():
  """clu's `(metric_writers, periodic_actions)`, imported on first use: they
  load TensorFlow (about 0.5 GB of memory), which a process that only
  predicts or benchmarks steps does not need."""
  # pylint: disable=g-import-not-at-top
  from clu import metric_writers
  from clu import periodic_actions
  # pylint: enable=g-import-not-at-top
  return metric_writers, periodic_actions


class Task(abc.ABC):
  """What a method gives the loop. Implementations live in `xsup/train/`."""

  config: ml_collections.ConfigDict
  mesh: jax.sharding.Mesh

  @property
  @abc.abstractmethod
  def steps_per_epoch(self) -> int:
    """Number of global batches in one epoch of the training data."""

  @abc.abstractmethod
  def init_state(self, key: jax.Array) -> state_lib.TrainState:
    """Pure initialiser of the train state (jitted by the loop)."""

  @abc.abstractmethod
  def train_step(self, state: state_lib.TrainState, batch: Dict[str, Any],
                 key: jax.Array) -> Tuple[state_lib.TrainState, Metrics]:
    """Pure update (jitted by the loop); metrics are scalars."""

  @abc.abstractmethod
  def train_batches(self, start_step: int) -> Iterator[pipeline.Batch]:
    """Process-local numpy batches from global step `start_step` on.

    A `pipeline.StepIterator` (or anything with its `get_state`,
    `set_state`, `next_step` and `close`) is saved in every checkpoint and
    restored on resume; a plain iterator resumes at the restored step.
    """

  @abc.abstractmethod
  def evaluate(self, state: state_lib.TrainState) -> Dict[str, Dict[str, Any]]:
    """Split name -> metrics dict (JSON-serialisable)."""

  def step_extras(self) -> Dict[str, Any]:
    """Extra, non-donated arguments of `train_step` (e.g. frozen networks)."""
    return {}

  def init_from_checkpoint(self, state: state_lib.TrainState,
                           restored: Dict[str, Any]
                           ) -> state_lib.TrainState:
    """Fine-tuning start: takes parameters from a restored state dict."""
    return state.replace(params=restored["params"],
                         batch_stats=restored["batch_stats"])

  def baseline_metrics(self) -> Dict[str, Dict[str, Any]]:
    """Evaluation name -> metrics of a reference baseline (with its `name`),
    shown next to the final results in the run summary (default: none)."""
    return {}

  def summary_images(self, state: state_lib.TrainState
                     ) -> Dict[str, np.ndarray]:
    """TensorBoard images: name -> uint8 `[N, H, W, 3]` (default: none).

    Called every `config.image_every_steps` steps and at the last step
    (never when the field is 0 or missing) on every process, like
    `evaluate`, since it may run computations over the replicated state;
    only process 0 writes the result.
    """
    del state
    return {}

  def export_spec(self, state: state_lib.TrainState
                  ) -> Tuple[str, Dict[str, Any], Dict[str, Any]]:
    """(model name, model kwargs, variables) written by `--mode export`."""
    raise NotImplementedError(f"{type(self).__name__} has no export")

  def export_metadata(self) -> Optional[Dict[str, Any]]:
    """JSON-serialisable inference settings stored with the export.

    Saved as `model.json["inference"]` (see `xsup.export`); what
    `xsup.predict` needs besides the parameters, e.g. the input size.
    None: nothing to store.
    """
    return None


def run_chunked(fn, variables, inputs: np.ndarray, batch_size: int,
                pad_to_batch: bool = False):
  """`fn(variables, chunk)` over `inputs` in chunks of one shape.

  The chunk size is min(batch_size, N), or batch_size with `pad_to_batch`
  (one compiled program for every N, e.g. evaluation and summaries); the
  last chunk is zero-padded to it, so `fn` compiles once per (chunk size,
  input shape). `fn` must treat examples independently (inference mode).
  Returns `fn`'s output pytree with leaves concatenated over the N inputs
  (numpy).
  """
  n = len(inputs)
  if n == 0:
    raise ValueError("Nothing to predict: no inputs")
  chunk = max(1, int(batch_size) if pad_to_batch else min(int(batch_size), n))
  outs = []
  for i in range(0, n, chunk):
    part = np.asarray(inputs[i:i + chunk])
    pad = chunk - len(part)
    if pad:
      part = np.concatenate([part, np.zeros((pad,) + part.shape[1:],
                                            part.dtype)])
    out = jax.device_get(fn(variables, part))
    outs.append(jax.tree.map(lambda a, k=chunk - pad: np.asarray(a)[:k], out))
  return jax.tree.map(lambda *a: np.concatenate(a), *outs)


def make_mesh(config: ml_collections.ConfigDict) -> jax.sharding.Mesh:
  """A 1-D data-parallel mesh over all devices (or `config.num_devices`)."""
  devices = jax.devices()
  num = config.get("num_devices") or len(devices)
  if num > len(devices):
    raise ValueError(f"config.num_devices={num} but only {len(devices)} "
                     "devices are visible")
  return jax.sharding.Mesh(np.array(devices[:num]), ("data",),
                           axis_types=(jax.sharding.AxisType.Auto,))


def check_batch_size(global_batch: int, mesh: jax.sharding.Mesh) -> None:
  if global_batch % mesh.size:
    raise ValueError(
        f"config.batch_size={global_batch} must be divisible by the "
        f"{mesh.size} devices of the mesh (data parallel); choose a multiple "
        f"of {mesh.size}")


# Checkpoint helpers (fall back to the newest intact step): see
# `xsup.train.checkpoints`.
checkpoint_manager = checkpoints.manager
load_checkpoint_tree = checkpoints.load_checkpoint_tree


def _checkpointable(batches) -> bool:
  return hasattr(batches, "get_state") and hasattr(batches, "set_state")


def restore_input_state(manager: ocp.CheckpointManager, step: int, batches,
                        start_step: int) -> None:
  """Restores the input pipeline's position saved with checkpoint `step`.

  The saved state must belong to the same data, global batch size and seed
  (`pipeline.StepIterator.set_state` checks) and point at the restored
  train step. A run may resume on another number of processes. Checkpoints
  without it (or plain batch generators) resume at `start_step`, which
  gives the same batches (they depend on the step alone).
  """
  directory = os.path.join(os.fspath(manager.directory), str(step), "data")
  if not _checkpointable(batches):
    return
  if not os.path.isdir(directory):
    logging.info("Checkpoint step %d has no input-pipeline state; the data "
                 "resumes at step %d", step, start_step)
    return
  name = f"process_{jax.process_index()}-of-{jax.process_count()}.json"
  try:
    if os.path.exists(os.path.join(directory, name)):
      manager.restore(step, args=ocp.args.Composite(
          data=grain_checkpoint.CheckpointRestore(batches)))
    else:
      # Written by another number of processes. Every process saved the
      # same global position (a batch depends on the step alone), so any
      # of their states serves this process.
      saved = sorted(f for f in os.listdir(directory)
                     if f.startswith("process_") and f.endswith(".json"))
      if not saved:
        raise ValueError(f"{directory} holds no input-pipeline state "
                         f"(expected {name})")
      logging.info("%s was written by another number of processes (%s); "
                   "resuming the input of %d processes from it", directory,
                   saved[0], jax.process_count())
      with open(os.path.join(directory, saved[0]), "rb") as f:
        batches.set_state(f.read())
  except pipeline.IteratorStateError as e:
    raise pipeline.IteratorStateError(f"{directory}: {e}") from e
  if batches.next_step != start_step:
    raise ValueError(
        f"{directory}: the input pipeline was saved at step "
        f"{batches.next_step} but the train state at step {start_step}; "
        "the checkpoint is inconsistent")


class JsonlWriter:
  """Appends one JSON object per call to `<workdir>/metrics.jsonl`."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.enabled = enabled

  def write(self, step: int, values: Dict[str, Any]) -> None:
    if not self.enabled:
      return
    record = {"step": int(step)}
    record.update({k: _to_json(v) for k, v in values.items()})
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")

  def drop_after(self, step: int) -> None:
    """Removes the records past `step` (and unreadable lines, e.g. one cut
    by a kill): a run resumed at `step` writes them again."""
    if not self.enabled or not os.path.exists(self.path):
      return
    with open(self.path) as f:
      lines = f.readlines()
    kept = []
    for line in lines:
      try:
        if int(json.loads(line)["step"]) <= step:
          kept.append(line if line.endswith("\n") else line + "\n")
      except (ValueError, KeyError, TypeError):
        pass
    if len(kept) == len(lines):
      return
    logging.info("%s: dropped %d records past the resumed step %d",
                 self.path, len(lines) - len(kept), step)
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(kept)
    os.replace(tmp, self.path)


def _to_json(value):
  if isinstance(value, dict):
    return {k: _to_json(v) for k, v in value.items()}
  arr = np.asarray(value)
  if arr.ndim == 0:
    return arr.item()
  return arr.tolist()


def write_eval(workdir: str, step: int, results: Dict[str, Dict[str, Any]],
               writer, jsonl: JsonlWriter) -> None:
  """Writes `eval/<split>_metrics.json`, scalars to writers and jsonl."""
  if jax.process_index() == 0:
    os.makedirs(os.path.join(workdir, "eval"), exist_ok=True)
  scalars = {}
  for split, metrics in results.items():
    if jax.process_index() == 0:
      with open(os.path.join(workdir, "eval", f"{split}_metrics.json"),
                "w") as f:
        json.dump(dict(metrics, step=int(step)), f, indent=2)
    for k, v in metrics.items():
      if isinstance(v, (int, float)) and not isinstance(v, bool):
        scalars[f"eval/{split}/{k}"] = v
  writer.write_scalars(step, scalars)
  jsonl.write(step, scalars)
  report.evaluation(step, results)


def eval_written(workdir: str, step: int) -> bool:
  """Whether `eval/*_metrics.json` holds an evaluation of `step`."""
  directory = os.path.join(workdir, "eval")
  if not os.path.isdir(directory):
    return False
  for name in os.listdir(directory):
    if name.endswith("_metrics.json"):
      try:
        with open(os.path.join(directory, name)) as f:
          if json.load(f).get("step") == step:
            return True
      except (OSError, ValueError, AttributeError):
        continue
  return False


def _check_finite(step: int, metrics: Dict[str, float],
                  manager: ocp.CheckpointManager) -> None:
  bad = [k for k, v in metrics.items() if not np.isfinite(v)]
  if bad:
    raise FloatingPointError(
        f"Non-finite {', '.join(bad)} at step {step}; training stopped "
        f"before saving this state. Last good checkpoint: step "
        f"{manager.latest_step()} in {manager.directory}. Lower the learning "
        "rate or inspect the data, then restart to resume from it.")


def total_steps(config: ml_collections.ConfigDict, task: Task) -> int:
  if config.get("total_steps"):
    return int(config.total_steps)
  return int(config.num_epochs * task.steps_per_epoch)


# Seconds the processes of a multi-host run wait for each other to compile.
COMPILE_BARRIER_TIMEOUT_S = 3600


def compile_step(step_fn, *args):
  """Compiles the jitted step for `args`; with several processes, then waits
  until every process has compiled it.

  The first step's collectives connect the processes with a short timeout
  (tens of seconds); one process may compile much longer than another (a
  compilation-cache hit on one host only, a busy host), so they meet at a
  barrier of the coordination service first.
  """
  compiled = step_fn.lower(*args).compile()
  if jax.process_count() > 1:
    ocp.multihost.sync_global_processes(
        "xsup_train_step_compiled", timeout=COMPILE_BARRIER_TIMEOUT_S)
  return compiled


def jit_train_step(task: Task, shardings):
  """`task.train_step` jitted as `step(state, batch, key, extras)`.

  The state (argument 0) is donated: its buffers are reused for the new
  state, so one copy of parameters and optimiser state is alive, not two.
  Batches arrive placed along "data" by `shard_batch`; the state is
  replicated (`shardings`). Extra arguments (e.g. a frozen teacher) are
  never donated.
  """
  return jax.jit(lambda s, b, k, e: task.train_step(s, b, k, **e),
                 out_shardings=(shardings, state_lib.replicated(task.mesh)),
                 donate_argnums=(0,))


@contextlib.contextmanager
def compilation_cache(config: ml_collections.ConfigDict, workdir: str):
  """JAX's persistent compilation cache for one run (on by default).

  A resumed or repeated run loads its compiled programs instead of
  compiling them again. `config.compilation_cache=False` turns it off;
  `config.compilation_cache_dir` (default `<workdir>/compilation_cache`)
  places it. A cache directory the process already set (e.g.
  `JAX_COMPILATION_CACHE_DIR`) is kept. Yields the directory used (None
  when off); the previous setting is restored afterwards.
  """
  current = jax.config.jax_compilation_cache_dir
  if not config.get("compilation_cache", True) or current:
    if current:
      logging.info("Persistent compilation cache: %s (set before)", current)
    yield current or None
    return
  path = os.path.abspath(config.get("compilation_cache_dir") or
                         os.path.join(workdir, "compilation_cache"))
  logging.info("Persistent compilation cache: %s", path)
  jax.config.update("jax_compilation_cache_dir", path)
  cache_lib.reset_cache()  # Opens the cache at `path` on the next compile.
  try:
    yield path
  finally:
    jax.config.update("jax_compilation_cache_dir", current)
    cache_lib.reset_cache()


def train_and_evaluate(task: Task, config: ml_collections.ConfigDict,
                       workdir: str) -> state_lib.TrainState:
  """Trains `task` in `workdir`, resuming from its latest checkpoint."""
  os.makedirs(workdir, exist_ok=True)
  with compilation_cache(config, workdir):
    return _train_and_evaluate(task, config, workdir)


def _train_and_evaluate(task: Task, config: ml_collections.ConfigDict,
                        workdir: str) -> state_lib.TrainState:
  mesh = task.mesh
  check_batch_size(config.batch_size, mesh)
  # Loads the training data now, outside any tracing of the state init.
  logging.info("%d steps per epoch", task.steps_per_epoch)
  root_key = jax.random.PRNGKey(config.seed)
  init_key, base_step_key = jax.random.split(root_key)
  abstract, shardings = state_lib.abstract_sharded(task.init_state, init_key,
                                                   mesh)
  manager = checkpoint_manager(os.path.join(workdir, "checkpoints"),
                               config.get("keep_checkpoints", 3))
  resumed = checkpoints.restore_train_state(manager, abstract, shardings)
  if resumed is not None:
    state, latest = resumed
    logging.info("Resuming from %s step %d", manager.directory, latest)
  else:
    latest = None
    # Parameters are born where they live (abstract-first initialisation).
    state = jax.jit(task.init_state, out_shardings=shardings)(init_key)
    if config.get("init_checkpoint"):
      restored, init_step = load_checkpoint_tree(config.init_checkpoint)
      logging.info("Initialising from %s (step %d)", config.init_checkpoint,
                   init_step)
      state = jax.device_put(task.init_from_checkpoint(state, restored),
                             shardings)
  start_step = int(jax.device_get(state.step))
  batches = task.train_batches(start_step)
  if latest is not None:
    restore_input_state(manager, latest, batches, start_step)
  num_steps = total_steps(config, task)

  extras = task.step_extras()
  step_fn = jit_train_step(task, shardings)

  is_main = jax.process_index() == 0
  metric_writers, periodic_actions = _clu()
  writer = metric_writers.create_default_writer(
      workdir, just_logging=not is_main)
  jsonl = JsonlWriter(workdir, enabled=is_main)
  jsonl.drop_after(start_step)
  log_every = config.get("log_every_steps", 50)
  ckpt_every = config.get("checkpoint_every_steps") or task.steps_per_epoch
  eval_every = config.get("eval_every_steps") or task.steps_per_epoch
  image_every = int(config.get("image_every_steps") or 0)
  report_progress = periodic_actions.ReportProgress(num_train_steps=num_steps,
                                                    writer=writer,
                                                    every_steps=log_every)
  pending = []
  last_log, last_log_step = time.time(), start_step
  try:
    with metric_writers.ensure_flushes(writer):
      if start_step >= num_steps:
        logging.info("Already trained for %d steps", start_step)
        if not eval_written(workdir, start_step):
          # Stopped between the last checkpoint and the final evaluation.
          logging.info("Writing the missing final evaluation of step %d",
                       start_step)
          write_eval(workdir, start_step, task.evaluate(state), writer,
                     jsonl)
      compiled = None
      for step in range(start_step, num_steps):
        batch = pipeline.shard_batch(next(batches), mesh)
        key = jax.random.fold_in(base_step_key, step)
        if compiled is None:
          compiled = compile_step(step_fn, state, batch, key, extras)
        state, metrics = compiled(state, batch, key, extras)
        pending.append(metrics)
        done = step + 1
        is_last = done == num_steps
        report_progress(done)
        want_ckpt = done % ckpt_every == 0 or is_last
        if done % log_every == 0 or is_last or want_ckpt:
          summary = {k: float(np.mean([float(m[k]) for m in pending]))
                     for k in pending[-1]}
          pending = []
          _check_finite(done, summary, manager)
          now = time.time()
          summary["steps_per_second"] = (done - last_log_step) / max(
              now - last_log, 1e-9)
          last_log, last_log_step = now, done
          report.progress(done, num_steps, summary["steps_per_second"],
                          summary)
          writer.write_scalars(done, {f"train/{k}": v
                                      for k, v in summary.items()})
          jsonl.write(done, {f"train/{k}": v for k, v in summary.items()})
        if want_ckpt:
          items = dict(
              state=ocp.args.StandardSave(state),
              meta=ocp.args.JsonSave(json.loads(config.to_json_best_effort())))
          if _checkpointable(batches):
            items["data"] = grain_checkpoint.CheckpointSave(batches)
          manager.save(done, args=ocp.args.Composite(**items))
        if done % eval_every == 0 or is_last:
          write_eval(workdir, done, task.evaluate(state), writer, jsonl)
        if image_every > 0 and (done % image_every == 0 or is_last):
          images = task.summary_images(state)
          if is_main and images:
            writer.write_images(done, images)
  finally:
    # Let a pending asynchronous save complete even when training fails, so
    # the last good checkpoint is never lost.
    manager.wait_until_finished()
    if hasattr(batches, "close"):
      batches.close()
  return state


def restore_latest(task: Task, config: ml_collections.ConfigDict,
                   workdir: str) -> Tuple[state_lib.TrainState, int]:
  """The latest checkpoint of `workdir` for evaluation or export.

  Only the step, parameters and BatchNorm statistics are restored (the
  optimiser state is left as None), so a run evaluates or exports whatever
  optimiser trained it, without loading its training data.
  """
  del config  # The checkpoint alone defines what is restored.
  directory = os.path.join(workdir, "checkpoints")
  try:
    restored, step = load_checkpoint_tree(directory)
  except FileNotFoundError as e:
    raise FileNotFoundError(
        f"No checkpoint in {os.path.abspath(directory)}; train first "
        "(--mode train) or point --workdir at a trained run") from e
  for field in ("params", "batch_stats"):
    if field not in restored:
      raise ValueError(f"Checkpoint {directory} step {step} has no "
                       f"{field!r}; expected a TrainState")
  state = state_lib.TrainState(
      step=jnp.asarray(step, jnp.int32), params=restored["params"],
      batch_stats=restored["batch_stats"], opt_state=None)
  return jax.device_put(state, state_lib.replicated(task.mesh)), step


def evaluate_only(task: Task, config: ml_collections.ConfigDict,
                  workdir: str) -> Dict[str, Dict[str, Any]]:
  """`--mode eval`: evaluates the latest checkpoint, writes eval files."""
  state, step = restore_latest(task, config, workdir)
  results = task.evaluate(state)
  metric_writers, _ = _clu()
  writer = metric_writers.create_default_writer(
      workdir, just_logging=jax.process_index() > 0)
  with metric_writers.ensure_flushes(writer):
    write_eval(workdir, step, results, writer,
               JsonlWriter(workdir, enabled=jax.process_index() == 0))
  return results


def mean_metrics(values: Dict[str, jax.Array]) -> Dict[str, jax.Array]:
  """Casts step metrics to float32 scalars (helper for tasks)."""
  return {k: jnp.asarray(v, jnp.float32) for k, v in values.items()}
