r"""Command line: train, fine-tune, evaluate and export.

    python -m xsup.main --config configs/ites_teacher_synthetic.py \
        --workdir /tmp/teacher [--mode train|finetune|eval|export] \
        [--config.batch_size=64 ...]

`config.trainer` names the method module in `xsup/train/` (see TRAINERS);
each provides `get_task(config)`. Outputs under `--workdir`:
`checkpoints/` (orbax), TensorBoard events, `metrics.jsonl`,
`eval/<split>_metrics.json` and, with `--mode export`, `export/`
(parameters, model and inference settings; run it on images or 2D keypoints
with `python -m xsup.predict`).
"""

import importlib
import os
import sys

from xsup import host_memory


def _restart_with_huge_pages():
  """Restarts as `python -m xsup.main <same arguments>` where that helps
  (`xsup.host_memory`)."""
  host_memory.restart_with_huge_pages(["-m", "xsup.main"] + sys.argv[1:])


if __name__ == "__main__":
  # Before the imports below, which take about a second and would otherwise
  # be done again in the restarted process.
  _restart_with_huge_pages()

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from xsup import multihost
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS

config_flags.DEFINE_config_file("config", None, "Training configuration.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints and logs.")
flags.DEFINE_enum("mode", "train", ["train", "finetune", "eval", "export"],
                  "What to do.")
flags.DEFINE_string("coordinator_address", None,
                    "Multi-host: host:port of process 0 (default: "
                    "JAX_COORDINATOR_ADDRESS or a detected SLURM / TPU pod "
                    "/ MPI cluster).")
flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")
flags.DEFINE_bool("distributed", True,
                  "Join a multi-host job when one is configured; "
                  "--nodistributed always runs a single process.")
flags.DEFINE_float("distributed_timeout_s", 300.0,
                   "Multi-host: seconds to wait for the other processes.")
flags.mark_flags_as_required(["config", "workdir"])
# The console shows xsup's progress, evaluations and summary, and only the
# warnings of the libraries; `--verbosity=0` (or higher) shows their
# INFO logs too.

# Trainer name -> module in xsup/train providing `get_task(config)`.
TRAINERS = {
    "lifting": "xsup.train.lifting",
    "xsup": "xsup.train.xsup",
}


def get_task(config):
  if config.trainer not in TRAINERS:
    raise ValueError(f"Unknown trainer {config.trainer!r}; known: "
                     f"{sorted(TRAINERS)}")
  return importlib.import_module(TRAINERS[config.trainer]).get_task(config)


def hide_gpus_from_tensorflow() -> None:
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.set_visible_devices([], "GPU")
  except ImportError:
    pass


def execute(config, workdir: str, mode: str, argv=None):
  """Runs `mode` for `config` in `workdir`; returns the mode's result.

  Ends with a summary on the console (`xsup.train.report`); `argv`, the
  command line, lets it spell out the next commands.
  """
  from xsup import export  # pylint: disable=g-import-not-at-top
  from xsup.train import loop  # pylint: disable=g-import-not-at-top
  from xsup.train import report  # pylint: disable=g-import-not-at-top
  task = get_task(config)
  if mode == "finetune" and not config.get("init_checkpoint"):
    raise ValueError("--mode finetune needs --config.init_checkpoint=<dir> "
                     "(a workdir or checkpoint of the previous stage)")
  if mode in ("train", "finetune"):
    state = loop.train_and_evaluate(task, config, workdir)
    report.summary(task, config, workdir, mode, int(state.step), argv=argv)
    return state
  if mode == "eval":
    results = loop.evaluate_only(task, config, workdir)
    report.summary(task, config, workdir, mode, None, argv=argv,
                   splits=list(results))
    return results
  if mode == "export":
    state, step = loop.restore_latest(task, config, workdir)
    name, kwargs, variables = task.export_spec(state)
    directory = export.save(os.path.join(workdir, "export"), name, kwargs,
                            variables, metadata=task.export_metadata())
    logging.info("Exported step %d to %s", step, directory)
    report.summary(task, config, workdir, mode, step, argv=argv,
                   export_dir=directory)
    return directory
  raise ValueError(f"Unknown mode {mode!r}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not FLAGS["verbosity"].present:
    # Library INFO logs (orbax, TensorFlow, clu) only with --verbosity.
    from xsup.train import report  # pylint: disable=g-import-not-at-top
    report.quiet_libraries()
  hide_gpus_from_tensorflow()
  try:
    multihost.initialize(
        multihost.resolve(FLAGS.coordinator_address, FLAGS.num_processes,
                          FLAGS.process_id, enabled=FLAGS.distributed),
        timeout_s=FLAGS.distributed_timeout_s)
  except (RuntimeError, ValueError) as e:
    raise SystemExit(f"xsup: {e}") from e
  logging.info("JAX process %d / %d, local devices %d, global devices %d",
               jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())
  from xsup.train import checkpoints  # pylint: disable=g-import-not-at-top
  try:
    execute(FLAGS.config, FLAGS.workdir, FLAGS.mode, argv=sys.argv)
  except checkpoints.CheckpointError as e:
    checkpoints.quiet_until_exit()
    sys.exit(f"xsup: {e}")  # One line, no traceback: nothing to debug.


def run():
  app.run(main)


def cli():
  """The `xsup` command's entry point: `run()`, in a process restarted once
  with 2 MB pages for XLA:CPU's buffers where that helps
  (`xsup.host_memory`; `python -m xsup.main` restarts at the top of this
  module)."""
  _restart_with_huge_pages()
  run()


if __name__ == "__main__":
  run()
