"""The command line end to end on the tiny synthetic configs, and all configs."""

import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from repo_configs import REPO
from repo_configs import load_config
from xla_flags_for_tests import xla_flags
from xsup import export
from xsup import main as xsup_main
from xsup.data import lifting as lifting_data
from xsup.train import lifting as lifting_train



@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(
    REPO, "configs", "*.py"))))
def test_every_config_loads_and_names_a_known_trainer(path):
  config = load_config(os.path.basename(path))
  assert config.trainer in xsup_main.TRAINERS
  assert config.batch_size > 0


def test_unknown_variant_is_rejected():
  with pytest.raises(ValueError, match="Unknown"):
    load_config("ites_teacher_synthetic.py", "huge")


def test_cli_trains_evaluates_exports_teacher_then_student(tmp_path):
  data_dir = str(tmp_path / "tfds")
  teacher_dir = str(tmp_path / "teacher")
  env = dict(os.environ, XLA_FLAGS=xla_flags(2))
  cmd = [sys.executable, "-m", "xsup.main",
         "--config", os.path.join(REPO, "configs",
                                  "ites_teacher_synthetic.py:tiny"),
         "--workdir", teacher_dir,
         f"--config.dataset.data_dir={data_dir}"]
  result = subprocess.run(cmd, env=env, capture_output=True, text=True,
                          timeout=600, cwd=REPO)
  assert result.returncode == 0, result.stderr[-3000:]
  assert os.path.isdir(os.path.join(teacher_dir, "checkpoints", "4"))
  records = [json.loads(l) for l in open(os.path.join(teacher_dir,
                                                      "metrics.jsonl"))]
  assert records[-1]["step"] == 4
  metrics = json.load(open(os.path.join(teacher_dir, "eval",
                                        "test_metrics.json")))
  assert metrics["num_samples"] > 0
  assert np.isfinite(metrics["p_mpjpe_flip"])
  assert set(metrics["per_action"]) >= {"average"}

  # The console: one progress line per log step, the evaluation, then the
  # summary; no library chatter (orbax logs ~25 lines per save).
  out, err = result.stdout, result.stderr
  assert re.search(r"step 2/4 \(50%\)  [\d.e+-]+ steps/s  ETA \S+  loss "
                   r"[\d.]+", out), out
  assert re.search(r"eval step 4 test: mpjpe [\d.]+ mm, p_mpjpe [\d.]+ mm",
                   out), out
  assert "Summary: train, lifting/teacher, step 4" in out
  assert f"p_mpjpe {metrics['p_mpjpe']:.1f} mm" in out
  config = load_config("ites_teacher_synthetic.py", "tiny")
  config.dataset.data_dir = data_dir
  flat = lifting_train.flat_baseline(lifting_data.load(config.dataset,
                                                       "test"))
  assert re.search(r"baseline \(flat pose, zero depth\): mpjpe "
                   f"{flat['mpjpe']:.1f} mm, p_mpjpe {flat['p_mpjpe']:.1f} mm",
                   out), out
  assert f"checkpoints: {teacher_dir}/checkpoints (steps 4)" in out
  assert f"tensorboard --logdir {teacher_dir}" in out
  assert f"{teacher_dir}/metrics.jsonl" in out
  student_config = os.path.join(REPO, "configs",
                                "ites_student_synthetic.py:tiny")
  assert (f"student: python -m xsup.main --config {student_config} "
          f"--workdir {tmp_path / 'student'} "
          f"--config.dataset.data_dir={data_dir} "
          f"--config.teacher_checkpoint={teacher_dir}") in out
  assert f"--workdir {teacher_dir} --mode eval" in out
  for chatter in ("checkpoint_manager.py", "logging_writer.py",
                  "dataset_builder.py", "cpu_feature_guard"):
    assert chatter not in err, err
  # --verbosity brings the library logs back.
  verbose = subprocess.run(cmd + ["--mode", "eval", "--verbosity=0"],
                           env=env, capture_output=True, text=True,
                           timeout=300, cwd=REPO)
  assert verbose.returncode == 0, verbose.stderr[-3000:]
  assert "checkpoint_manager.py" in verbose.stderr
  assert "Summary: eval, lifting/teacher" in verbose.stdout

  # A typo in an override fails loudly.
  bad = subprocess.run(cmd + ["--config.batch_sise=8"], env=env,
                       capture_output=True, text=True, timeout=300, cwd=REPO)
  assert bad.returncode != 0
  assert "batch_sise" in bad.stderr

  results = xsup_main.execute(config, teacher_dir, "eval")
  assert "test" in results
  export_dir = xsup_main.execute(config, teacher_dir, "export")
  model, variables = export.load_model(export_dir)
  with np.load(os.path.join(export_dir, "params.npz")) as flat:
    assert any(k.startswith("params/") for k in flat.files)
  out = model.apply(variables, np.zeros((2, 17, 2), np.float32), train=False)
  assert out["camera"].shape == (2, 17, 3)

  student = load_config("ites_student_synthetic.py", "tiny")
  student.dataset.data_dir = data_dir
  student.teacher_checkpoint = teacher_dir
  student_dir = str(tmp_path / "student")
  xsup_main.execute(student, student_dir, "train")
  assert json.load(open(os.path.join(student_dir, "eval",
                                     "test_metrics.json")))["num_samples"] > 0
  with pytest.raises(ValueError, match="init_checkpoint"):
    xsup_main.execute(student, str(tmp_path / "ft"), "finetune")


def test_eval_without_checkpoint_fails_clearly(tmp_path):
  config = load_config("ites_teacher_synthetic.py", "tiny")
  with pytest.raises(FileNotFoundError, match="No checkpoint"):
    xsup_main.execute(config, str(tmp_path / "empty"), "eval")


def test_unknown_trainer_and_dataset_fail_clearly():
  config = load_config("ites_teacher_synthetic.py", "tiny")
  config.unlock()
  config.trainer = "nope"
  with pytest.raises(ValueError, match="Unknown trainer"):
    xsup_main.get_task(config)
  from xsup.data import sources  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="Unknown dataset 'nope'.*synthetic_lifting"):
    sources.builder_module("nope")


def test_cmu_tiny_configs_train_on_generated_clips(tmp_path):
  """The CMU configs build their dataset from BVH files and train."""
  import cmu_fixtures  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  manual = tmp_path / "cmu"
  for clip in ("131_01", "131_02", "131_03"):
    cmu_fixtures.write_bvh(manual / f"{clip}.bvh",
                           cmu_fixtures.random_motion(rng, 48, max_deg=20))
  teacher_dir = str(tmp_path / "teacher")
  for stage in ("teacher", "student"):
    config = load_config(f"ites_{stage}_cmu.py", "tiny")
    config.dataset.manual_dir = str(manual)
    config.dataset.data_dir = str(tmp_path / "tfds")
    config.teacher_checkpoint = teacher_dir
    workdir = teacher_dir if stage == "teacher" else str(tmp_path / stage)
    xsup_main.execute(config, workdir, "train")
    metrics = json.load(open(os.path.join(workdir, "eval",
                                          "clip_131_03_metrics.json")))
    assert metrics["num_samples"] == 48 // 4 * 4  # 30 fps, 4 cameras.
