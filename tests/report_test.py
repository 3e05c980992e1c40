"""Console lines and the run summary (`xsup.train.report`), without training."""

import json
import logging
import os

from absl import logging as absl_logging

from repo_configs import REPO
from repo_configs import load_config
from xsup.train import report


def test_progress_line_has_step_rate_eta_and_loss():
  line = report.progress_line(250, 1000, 12.5, {"loss": 0.12345, "cycle": 1})
  assert line == "step 250/1000 (25%)  12.5 steps/s  ETA 1m00s  loss 0.1235"
  assert "ETA 1h23m" in report.progress_line(0, 10000, 2.0, {})


def test_evaluation_lines_pick_the_headline_numbers():
  lines = report.evaluation_lines(7, {"test": {
      "confident/mpjpe": 101.26, "best/p_mpjpe": 80.0, "mpjpe_2d": 3.21,
      "ambiguity_ratio": 0.5, "num_samples": 12, "per_action": {}}})
  assert lines == ["eval step 7 test: confident/mpjpe 101.3 mm, best/p_mpjpe "
                   "80.0 mm, mpjpe_2d 3.2 px (12 samples)"]


def test_image_summary_shows_the_mean_pose_baseline_and_the_s2_command(
    tmp_path):
  workdir = tmp_path / "s1"
  (workdir / "eval").mkdir(parents=True)
  (workdir / "checkpoints" / "10").mkdir(parents=True)
  with open(workdir / "eval" / "test_metrics.json", "w") as f:
    json.dump({"step": 10, "confident/mpjpe": 120.0, "best/p_mpjpe": 90.0,
               "baseline/mpjpe": 185.1, "baseline/p_mpjpe": 150.0,
               "num_samples": 4}, f)
  with open(workdir / "eval" / "old_metrics.json", "w") as f:
    json.dump({"step": 5, "confident/mpjpe": 300.0}, f)
  config = load_config("synthetic_multi_s1.py")
  s1 = os.path.join(REPO, "configs", "synthetic_multi_s1.py")
  argv = ["xsup/main.py", "--config", s1, "--workdir", str(workdir),
          "--config.dataset.data_dir=/d", "--config.batch_size=2"]
  lines = report.summary_lines(object(), config, str(workdir), "train", 10,
                               argv=argv)
  text = "\n".join(lines)
  assert lines[0] == "Summary: train, xsup/s1, step 10"
  assert "  test: confident/mpjpe 120.0 mm, best/p_mpjpe 90.0 mm" in text
  assert "    baseline (mean pose): mpjpe 185.1 mm, p_mpjpe 150.0 mm" in text
  assert "old" not in text  # Another step's evaluation is not shown.
  assert f"checkpoints: {workdir}/checkpoints (steps 10)" in text
  s2 = os.path.join(REPO, "configs", "synthetic_multi_s2.py")
  assert (f"S2: python -m xsup.main --config {s2} --workdir "
          f"{tmp_path / 's2'} --mode finetune --config.dataset.data_dir=/d "
          f"--config.init_checkpoint={workdir}") in text
  # The same run's own overrides are kept for its evaluation.
  assert ("--mode eval --config.dataset.data_dir=/d --config.batch_size=2"
          in text)


def test_quiet_libraries_keeps_xsup_info_and_library_warnings():
  handler = absl_logging.get_absl_handler()
  before = list(handler.filters)
  verbosity = absl_logging.get_verbosity()
  try:
    report.quiet_libraries()
    (flt,) = [f for f in handler.filters if f not in before]
    record = lambda path, level: logging.LogRecord(
        "absl", level, path, 1, "m", (), None)
    lib = "/venv/site-packages/orbax/checkpoint/checkpoint_manager.py"
    assert not flt.filter(record(lib, logging.INFO))
    assert flt.filter(record(lib, logging.WARNING))
    assert flt.filter(record(report.__file__, logging.INFO))
  finally:
    for f in list(handler.filters):
      if f not in before:
        handler.removeFilter(f)
    absl_logging.set_verbosity(verbosity)
