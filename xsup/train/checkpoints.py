"""Orbax checkpoints that survive a damaged newest step.

A checkpoint step can be unreadable after a disk or copy fault (a truncated
array file or metadata file). Every reader here restores the newest
*intact* step instead of crashing on the newest one:

* training resumes from it (`restore_train_state`), evaluation and export
  use it (`load_checkpoint_tree`), as do `config.init_checkpoint` and the
  student's teacher checkpoint;
* each unreadable step is reported with a warning naming its directory and
  is never deleted. Training moves the unreadable steps newer than the
  restored one aside to `<step>.corrupt` (orbax ignores that name), since
  it will save those step numbers again;
* when no step is intact, `CheckpointError` says so in one line naming the
  directory.

A step whose files read fine but do not match the restore target (e.g. a
changed model config) is intact: that error is raised as it is, without
falling back to an older step.
"""

import contextlib
import gc
import os
import sys
from typing import Any, Callable, List, Optional, Tuple

from absl import logging
import jax
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp

CORRUPT_SUFFIX = ".corrupt"
# Characters of an underlying error quoted in warnings and errors.
_MAX_ERROR_CHARS = 300


class CheckpointError(RuntimeError):
  """No usable checkpoint; the message is one line naming the directory."""


def manager(directory: str, max_to_keep: int = 3,
            create: bool = True) -> ocp.CheckpointManager:
  """The orbax manager of a run's `checkpoints/` directory."""
  return ocp.CheckpointManager(
      os.path.abspath(directory),
      options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                           create=create))


def short_error(error: BaseException) -> str:
  """`Type: first line of the message`, at most a few hundred characters."""
  lines = str(error).strip().splitlines()
  text = lines[0] if lines else ""
  if len(text) > _MAX_ERROR_CHARS:
    text = text[:_MAX_ERROR_CHARS] + "..."
  return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _log_unraisable(unraisable) -> None:
  logging.debug("While reading a checkpoint: %s",
                short_error(unraisable.exc_value)
                if unraisable.exc_value is not None else unraisable)


def _log_exception(exc_type, exc_value, exc_tb) -> None:
  del exc_tb
  logging.debug("While reading a checkpoint: %s",
                short_error(exc_value) if exc_value is not None else exc_type)


@contextlib.contextmanager
def _quiet_unraisable():
  """Keeps the pages that a damaged step's failed reads print off the
  console: orbax's abandoned read coroutines ("Exception ignored in ...",
  with whole TensorStore specs) and TensorStore callbacks reaching the
  closed event loop ("RuntimeError: Event loop is closed" tracebacks).
  While a step is read, both hooks log at debug level instead."""
  previous = sys.unraisablehook, sys.excepthook
  sys.unraisablehook, sys.excepthook = _log_unraisable, _log_exception
  try:
    yield
  finally:
    gc.collect()  # Finalise the abandoned coroutines under the quiet hook.
    sys.unraisablehook, sys.excepthook = previous


def quiet_until_exit() -> None:
  """The same, for good: before a process stops on `CheckpointError`,
  whose background reads may still report while it exits."""
  sys.unraisablehook, sys.excepthook = _log_unraisable, _log_exception


def _restore_raw(mgr: ocp.CheckpointManager, step: int):
  """The `state` item of `step` as a plain tree on this process's first
  device, whatever devices or hosts wrote it."""
  directory = os.fspath(mgr.directory)
  reader = ocp.CheckpointManager(
      directory, item_handlers={"state": ocp.StandardCheckpointHandler()})
  metadata = reader.item_metadata(step)["state"]
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
      metadata)
  return reader.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(target)))["state"]


def _readable(mgr: ocp.CheckpointManager, step: int) -> bool:
  try:
    _restore_raw(mgr, step)
  except Exception:  # pylint: disable=broad-except
    return False
  return True


def step_directory(mgr: ocp.CheckpointManager, step: int) -> str:
  return os.path.join(os.fspath(mgr.directory), str(step))


def restore_newest(mgr: ocp.CheckpointManager,
                   restore: Optional[Callable[[int], Any]] = None
                   ) -> Optional[Tuple[Any, int, List[int]]]:
  """Restores the newest intact step of `mgr`.

  Args:
    mgr: the manager.
    restore: `step -> restored` (default: the `state` item as a plain
      tree). When it fails on a step whose files still read as a plain
      tree, the error is raised as it is (a mismatch, not damage).
  Returns:
    `(restored, step, unreadable newer steps)`, or None without any step.
  Raises:
    CheckpointError: steps exist but none is intact.
  """
  steps = sorted(mgr.all_steps(), reverse=True)
  if not steps:
    return None
  custom = restore is not None
  restore = restore or (lambda s: _restore_raw(mgr, s))
  bad: List[int] = []
  errors: List[str] = []
  for step in steps:
    try:
      with _quiet_unraisable():
        return restore(step), step, bad
    except Exception as e:  # pylint: disable=broad-except
      with _quiet_unraisable():
        readable = custom and _readable(mgr, step)
      if readable:
        raise
      bad.append(step)
      errors.append(short_error(e))
      older = [s for s in steps if s < step]
      logging.warning(
          "Checkpoint step %d is unreadable (%s): %s. It is left in place; "
          "%s", step, step_directory(mgr, step), errors[-1],
          f"trying step {older[0]}." if older else "no older step.")
  raise CheckpointError(
      f"No intact checkpoint in {mgr.directory}: steps {bad} are all "
      f"unreadable (newest: {errors[0]})")


def set_aside(mgr: ocp.CheckpointManager, steps: List[int]) -> None:
  """Renames unreadable steps to `<step>.corrupt[.N]` (never deletes them),
  so that training can save those step numbers again."""
  if not steps:
    return
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("xsup_checkpoint_set_aside")
  if jax.process_index() == 0:
    for step in steps:
      src = step_directory(mgr, step)
      dst = src + CORRUPT_SUFFIX
      n = 0
      while os.path.exists(dst):
        n += 1
        dst = f"{src}{CORRUPT_SUFFIX}.{n}"
      os.rename(src, dst)
      logging.warning("Moved the unreadable checkpoint step %d aside: %s -> "
                      "%s (kept for inspection; training will write step %d "
                      "again).", step, src, dst, step)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("xsup_checkpoint_set_aside_done")
  mgr.reload()


def restore_train_state(mgr: ocp.CheckpointManager, abstract, shardings
                        ) -> Optional[Tuple[Any, int]]:
  """Training resume: the newest intact step restored into `abstract`.

  Args:
    mgr: the run's manager.
    abstract: abstract train state (`jax.ShapeDtypeStruct` leaves).
    shardings: matching shardings of the state.
  Returns:
    `(state, step)`, or None when there is no checkpoint. Unreadable newer
    steps are moved aside (`set_aside`).
  """
  target = jax.tree.map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
      abstract, shardings)

  def restore(step):
    return mgr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target)))["state"]

  found = restore_newest(mgr, restore)
  if found is None:
    return None
  state, step, bad = found
  set_aside(mgr, bad)
  return state, step


def load_checkpoint_tree(path: str) -> Tuple[Any, int]:
  """The newest intact (or the given) checkpoint under `path`, as a tree.

  Args:
    path: a workdir, its `checkpoints/` directory, or one step directory
      (that step only, no fallback).
  Returns:
    `(state dict with params/batch_stats/..., step)`, the arrays on this
    process's first device, so a checkpoint written on other devices or
    hosts (a TPU pod, several GPUs) loads anywhere.
  Raises:
    FileNotFoundError: no checkpoint at `path`.
    CheckpointError: none is intact (or the given step is unreadable).
  """
  path = os.path.abspath(os.path.expanduser(path))
  for directory in (os.path.join(path, "checkpoints"), path):
    if not os.path.isdir(directory):
      continue
    found = restore_newest(ocp.CheckpointManager(directory))
    if found is not None:
      return found[0], found[1]
  parent, name = os.path.split(path)
  if name.isdigit() and os.path.isdir(path):
    try:
      with _quiet_unraisable():
        return (_restore_raw(ocp.CheckpointManager(parent), int(name)),
                int(name))
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointError(f"Checkpoint {path} is unreadable: "
                            f"{short_error(e)}") from e
  raise FileNotFoundError(
      f"No checkpoint found at {path!r} (looked for a workdir with "
      "checkpoints/, a checkpoints directory, or a step directory)")
