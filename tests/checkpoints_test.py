"""Damaged checkpoints, resumed metrics and the final evaluation.

Real orbax checkpoints of a tiny run, damaged the way a disk or copy fault
does it (a truncated array file or metadata file).
"""

import glob
import json
import logging
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from repo_configs import REPO
from repo_configs import load_config
from xla_flags_for_tests import xla_flags
from xsup import export
from xsup import main as xsup_main
from xsup.train import checkpoints
from xsup.train import lifting as lifting_train
from xsup.train import loop
from xsup.train import state as state_lib


def _truncate_data(step_dir):
  """Cuts the array data files of a step in half (an interrupted copy)."""
  files = glob.glob(os.path.join(step_dir, "state", "**", "d", "*"),
                    recursive=True)
  assert files
  for path in files:
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)


def _truncate_metadata(step_dir):
  with open(os.path.join(step_dir, "state", "_METADATA"), "r+b") as f:
    f.truncate(100)


def _config(tmp_path, steps=4):
  config = load_config("ites_teacher_synthetic.py", "tiny")
  config.dataset.data_dir = str(tmp_path / "tfds")
  config.checkpoint_every_steps = 2
  config.log_every_steps = 1
  config.total_steps = steps
  config.num_devices = 1  # Compiles faster than the tests' 8 CPU devices.
  return config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A tiny teacher workdir with checkpoints at steps 2 and 4 (read-only:
  tests copy it)."""
  root = tmp_path_factory.mktemp("trained")
  workdir = str(root / "run")
  xsup_main.execute(_config(root), workdir, "train")
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2",
                                                                      "4"]
  return root, workdir


def _copy(trained_run, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  root, workdir = trained_run
  shutil.copytree(root / "tfds", tmp_path / "tfds")
  dst = str(tmp_path / "run")
  shutil.copytree(workdir, dst)
  return dst


def _abstract_state(config):
  """The train state's abstract tree and shardings, without compiling."""
  task = lifting_train.LiftingTask(config)
  abstract = jax.eval_shape(task.init_state, jax.random.PRNGKey(0))
  shardings = jax.tree.map(lambda _: state_lib.replicated(task.mesh),
                           abstract)
  return abstract, shardings


def test_all_modes_fall_back_to_the_newest_intact_step(trained, tmp_path,
                                                       caplog):
  """A truncated array data file: eval, export and train, end to end."""
  workdir = _copy(trained, tmp_path)
  bad_step = os.path.join(workdir, "checkpoints", "4")
  _truncate_data(bad_step)
  config = _config(tmp_path)

  # Eval: step 2, with a warning that names the damaged step.
  with caplog.at_level(logging.WARNING):
    results = xsup_main.execute(config, workdir, "eval")
  assert "test" in results
  assert f"step 4 is unreadable ({bad_step})" in caplog.text
  with open(os.path.join(workdir, "eval", "test_metrics.json")) as f:
    assert json.load(f)["step"] == 2
  assert os.path.isdir(bad_step)  # Never deleted.

  # Export: step 2's parameters.
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    export_dir = xsup_main.execute(config, workdir, "export")
  assert f"step 4 is unreadable ({bad_step})" in caplog.text
  tree, step = checkpoints.load_checkpoint_tree(
      os.path.join(workdir, "checkpoints", "2"))
  assert step == 2
  exported = export.load_variables(export_dir)
  np.testing.assert_array_equal(
      exported["params"]["rotation_head"]["kernel"],
      tree["params"]["rotation_head"]["kernel"])

  # Train: resumes from step 2, sets step 4 aside (kept), trains on.
  caplog.clear()
  config.total_steps = 6
  with caplog.at_level(logging.WARNING):
    state = xsup_main.execute(config, workdir, "train")
  assert int(state.step) == 6
  assert f"step 4 is unreadable ({bad_step})" in caplog.text
  names = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
  assert "4.corrupt" in names and {"4", "6"} <= set(names)
  assert os.path.isdir(bad_step + ".corrupt")


def test_a_truncated_metadata_file_falls_back_in_every_reader(
    trained, tmp_path, caplog):
  """The restore paths of eval/export (`restore_latest`) and of train
  resume (`restore_train_state`), on a truncated `_METADATA`."""
  workdir = _copy(trained, tmp_path)
  bad_step = os.path.join(workdir, "checkpoints", "4")
  _truncate_metadata(bad_step)
  config = _config(tmp_path)
  task = lifting_train.LiftingTask(config)
  with caplog.at_level(logging.WARNING):
    _, step = loop.restore_latest(task, config, workdir)
  assert step == 2
  assert f"step 4 is unreadable ({bad_step})" in caplog.text
  assert "JSONDecodeError" in caplog.text
  mgr = checkpoints.manager(os.path.join(workdir, "checkpoints"))
  state, step = checkpoints.restore_train_state(mgr, *_abstract_state(config))
  assert step == 2 and int(state.step) == 2
  assert os.path.isdir(bad_step + ".corrupt") and not os.path.exists(bad_step)
  assert mgr.all_steps() == [2]


def test_no_intact_step_is_a_one_line_error(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  for step in ("2", "4"):
    _truncate_data(os.path.join(workdir, "checkpoints", step))
  config = _config(tmp_path)
  directory = os.path.join(workdir, "checkpoints")
  mgr = checkpoints.manager(directory)
  readers = {
      "eval": lambda: xsup_main.execute(config, workdir, "eval"),
      "export": lambda: xsup_main.execute(config, workdir, "export"),
      "train": lambda: checkpoints.restore_train_state(
          mgr, *_abstract_state(config)),
  }
  for reader in readers.values():
    with pytest.raises(checkpoints.CheckpointError) as err:
      reader()
    message = str(err.value)
    assert "\n" not in message and directory in message, message
    assert "[4, 2]" in message
  assert sorted(os.listdir(directory)) == ["2", "4"]  # Nothing moved.
  # The command line prints that line, not a traceback.
  env = dict(os.environ, XLA_FLAGS=xla_flags(1))
  result = subprocess.run(
      [sys.executable, "-m", "xsup.main", "--config",
       os.path.join(REPO, "configs", "ites_teacher_synthetic.py:tiny"),
       "--workdir", workdir, "--mode", "eval",
       f"--config.dataset.data_dir={tmp_path / 'tfds'}"],
      env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
  assert result.returncode == 1
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  last = result.stderr.strip().splitlines()[-1]
  assert "No intact checkpoint in" in last and directory in last


def test_teacher_checkpoint_falls_back_and_a_given_step_does_not(
    trained, tmp_path, caplog):
  workdir = _copy(trained, tmp_path)
  _truncate_metadata(os.path.join(workdir, "checkpoints", "4"))
  with caplog.at_level(logging.WARNING):
    tree, step = loop.load_checkpoint_tree(workdir)
  assert step == 2 and "params" in tree
  assert "step 4 is unreadable" in caplog.text
  with pytest.raises(checkpoints.CheckpointError, match="checkpoints/4 is "
                     "unreadable"):
    loop.load_checkpoint_tree(os.path.join(workdir, "checkpoints", "4"))


def test_a_mismatched_but_intact_checkpoint_is_not_skipped(trained,
                                                           tmp_path):
  workdir = _copy(trained, tmp_path)
  config = _config(tmp_path)
  config.model.width = 48  # Another architecture than the checkpoint's.
  directory = os.path.join(workdir, "checkpoints")
  with pytest.raises(Exception) as err:
    checkpoints.restore_train_state(checkpoints.manager(directory),
                                    *_abstract_state(config))
  assert not isinstance(err.value, checkpoints.CheckpointError)
  assert sorted(os.listdir(directory)) == ["2", "4"]


def _train(config, workdir, data, crash_after=None, crash_in_eval=False):
  train, test = data
  task = lifting_train.LiftingTask(config, train_data=train,
                                   eval_data={"test": test})
  if crash_after is not None:
    original = task.train_batches

    def crashing(start):
      for i, batch in enumerate(original(start)):
        if start + i >= crash_after:
          raise KeyboardInterrupt("simulated kill")
        yield batch
    task.train_batches = crashing
  if crash_in_eval:
    def killed(state):
      raise KeyboardInterrupt("simulated kill before the final evaluation")
    task.evaluate = killed
  return loop.train_and_evaluate(task, config, workdir)


def _lifting_config(steps=4):
  config = load_config("ites_teacher_synthetic.py", "tiny")
  config.total_steps = steps
  config.log_every_steps = 1
  config.checkpoint_every_steps = 2
  config.eval_every_steps = 100  # Only the final evaluation.
  config.num_devices = 1
  return config


def test_resume_drops_metrics_past_the_checkpoint_and_writes_final_eval(
    tmp_path, lifting_arrays):
  workdir = str(tmp_path / "run")
  config = _lifting_config()
  path = os.path.join(workdir, "metrics.jsonl")
  # Killed at step 3 (checkpoint at 2, records up to 3).
  with pytest.raises(KeyboardInterrupt):
    _train(config, workdir, lifting_arrays, crash_after=3)
  with open(path) as f:
    assert [json.loads(l)["step"] for l in f] == [1, 2, 3]
  # Resumed at 2: step 3 is logged once; then killed after the last
  # checkpoint (step 4), before the final evaluation.
  with pytest.raises(KeyboardInterrupt):
    _train(config, workdir, lifting_arrays, crash_in_eval=True)
  with open(path) as f:
    assert [json.loads(l)["step"] for l in f] == [1, 2, 3, 4]
  assert "4" in os.listdir(os.path.join(workdir, "checkpoints"))
  assert not loop.eval_written(workdir, 4)
  # Restarted: nothing to train, the missing evaluation is written.
  state = _train(config, workdir, lifting_arrays)
  assert int(state.step) == 4
  assert loop.eval_written(workdir, 4)
  with open(os.path.join(workdir, "eval", "test_metrics.json")) as f:
    assert json.load(f)["step"] == 4
  with open(path) as f:
    records = [json.loads(l) for l in f]
  assert [r["step"] for r in records if "train/loss" in r] == [1, 2, 3, 4]
  assert [r["step"] for r in records if "eval/test/mpjpe" in r] == [4]


def test_a_damaged_export_names_the_file(tmp_path):
  directory = export.save(str(tmp_path / "export"), "teacher",
                          {"num_joints": 17, "width": 8, "num_layers": 1,
                           "dict_size": 2},
                          {"params": {"w": np.ones((3, 3), np.float32)}})
  path = os.path.join(directory, export.PARAMS_FILE)
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)
  with pytest.raises(ValueError, match=f"{path}: not a readable parameter "
                     "archive.*export again"):
    export.load_model(directory)
  spec = os.path.join(directory, export.MODEL_FILE)
  with open(spec, "r+b") as f:
    f.truncate(10)
  with pytest.raises(ValueError, match=f"{spec}: not readable JSON"):
    export.load_model(directory)
