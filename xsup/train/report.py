"""What a person sees on the console: progress, evaluations, a summary.

* `quiet_libraries`: orbax, TensorFlow, TFDS, clu and jax log at INFO
  about every checkpoint save and start-up detail; unless `--verbosity`
  is given, only their warnings and errors reach the console (xsup's own
  log lines stay).
* `progress`: one line per log step (step, steps/s, ETA, loss).
* `evaluation`: the headline numbers of each evaluation.
* `summary`: at the end of every run, the final metrics next to the
  task's baseline, where checkpoints, TensorBoard events and metrics are,
  and the next commands.

Lines are printed to stdout by process 0 only.
"""

import json
import logging as std_logging
import os
import shlex
from typing import Any, Dict, List, Optional, Sequence

from absl import logging
import jax

_XSUP_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Metrics shown for each evaluation, when present (lifting, then images).
HEADLINE_KEYS = ("mpjpe", "p_mpjpe", "mpjpe_flip", "p_mpjpe_flip",
                 "confident/mpjpe", "confident/p_mpjpe", "best/mpjpe",
                 "best/p_mpjpe", "triangulated/p_mpjpe", "mpjpe_2d",
                 "pck", "auc")
BASELINE_KEYS = ("mpjpe", "p_mpjpe", "mpjpe_flip", "p_mpjpe_flip")


def say(line: str) -> None:
  """Prints a console line on process 0."""
  if jax.process_index() == 0:
    print(line, flush=True)


class _OnlyXsupBelowWarning(std_logging.Filter):
  """Passes warnings and errors, and lower levels only from xsup's files."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return (record.levelno >= std_logging.WARNING or
            os.path.abspath(record.pathname).startswith(_XSUP_DIR))


def quiet_libraries() -> None:
  """Keeps the libraries' INFO chatter off the console (see module doc).

  Call it before TensorFlow is imported (its C++ start-up notes are
  filtered through `TF_CPP_MIN_LOG_LEVEL`, unless already set).
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
  logging.set_verbosity(logging.INFO)
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _OnlyXsupBelowWarning) for f in handler.filters):
    handler.addFilter(_OnlyXsupBelowWarning())


def _duration(seconds: float) -> str:
  seconds = int(round(max(seconds, 0.0)))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  if hours:
    return f"{hours}h{minutes:02d}m"
  if minutes:
    return f"{minutes}m{secs:02d}s"
  return f"{secs}s"


def progress_line(step: int, num_steps: int, steps_per_second: float,
                  metrics: Dict[str, float]) -> str:
  """`step 50/1000 (5%)  12.3 steps/s  ETA 1m17s  loss 0.5753`."""
  rate = max(float(steps_per_second), 1e-9)
  line = (f"step {step}/{num_steps} ({100.0 * step / max(num_steps, 1):.0f}%)"
          f"  {steps_per_second:.3g} steps/s"
          f"  ETA {_duration((num_steps - step) / rate)}")
  if "loss" in metrics:
    line += f"  loss {metrics['loss']:.4g}"
  return line


def progress(step: int, num_steps: int, steps_per_second: float,
             metrics: Dict[str, float]) -> None:
  say(progress_line(step, num_steps, steps_per_second, metrics))


def _unit(key: str) -> str:
  if "mpjpe_2d" in key:
    return " px"
  if "mpjpe" in key:
    return " mm"
  return ""


def _numbers(metrics: Dict[str, Any], keys: Sequence[str]) -> str:
  parts = []
  for key in keys:
    value = metrics.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
      parts.append(f"{key} {value:.1f}{_unit(key)}" if _unit(key)
                   else f"{key} {value:.3g}")
  return ", ".join(parts)


def evaluation_lines(step: int, results: Dict[str, Dict[str, Any]]
                     ) -> List[str]:
  lines = []
  for split, metrics in results.items():
    line = f"eval step {step} {split}: {_numbers(metrics, HEADLINE_KEYS)}"
    if "num_samples" in metrics:
      line += f" ({metrics['num_samples']} samples)"
    lines.append(line)
  return lines


def evaluation(step: int, results: Dict[str, Dict[str, Any]]) -> None:
  for line in evaluation_lines(step, results):
    say(line)


# The summary -------------------------------------------------------------


def read_evaluations(workdir: str) -> Dict[str, Dict[str, Any]]:
  """Split -> the metrics of `<workdir>/eval/<split>_metrics.json`."""
  directory = os.path.join(workdir, "eval")
  out = {}
  if os.path.isdir(directory):
    for name in sorted(os.listdir(directory)):
      if name.endswith("_metrics.json"):
        try:
          with open(os.path.join(directory, name)) as f:
            out[name[:-len("_metrics.json")]] = json.load(f)
        except (OSError, ValueError):
          continue
  return out


def _baseline(split: str, metrics: Dict[str, Any],
              baselines: Dict[str, Dict[str, Any]]
              ) -> Optional[Dict[str, Any]]:
  """The split's baseline: the task's, or the `baseline/` metrics."""
  if split in baselines:
    return baselines[split]
  inline = {k[len("baseline/"):]: v for k, v in metrics.items()
            if k.startswith("baseline/")}
  if inline:
    return dict(inline, name="mean pose")
  return None


def command(config_arg: str, workdir: str, overrides: Sequence[str] = (),
            extra: Sequence[str] = ()) -> str:
  """A `python -m xsup.main` command line."""
  args = ["python", "-m", "xsup.main", "--config", config_arg, "--workdir",
          workdir] + list(extra) + list(overrides)
  return " ".join(shlex.quote(a) for a in args)


def split_command_line(argv: Sequence[str]):
  """`(config argument, --config.* overrides)` of an xsup.main command."""
  config_arg, overrides = None, []
  args = list(argv)
  for i, arg in enumerate(args):
    if arg in ("--config", "-config") and i + 1 < len(args):
      config_arg = args[i + 1]
    elif arg.startswith("--config="):
      config_arg = arg[len("--config="):]
    elif arg.startswith("--config."):
      overrides.append(arg)
  return config_arg, overrides


def _sibling_config(config_arg: str, old: str, new: str) -> Optional[str]:
  """`config_arg` with `old` replaced by `new` in the file name, when that
  file exists (e.g. the student config next to a teacher's)."""
  path, sep, variant = config_arg.partition(":")
  folder, name = os.path.split(path)
  if old not in name:
    return None
  other = os.path.join(folder, name.replace(old, new))
  return other + sep + variant if os.path.isfile(other) else None


def _sibling_workdir(workdir: str, old: str, new: str) -> str:
  folder, name = os.path.split(os.path.normpath(workdir))
  if old in name:
    return os.path.join(folder, name.replace(old, new))
  return os.path.join(folder, f"{name}_{new}")


def next_commands(config, workdir: str, mode: str,
                  argv: Optional[Sequence[str]] = None) -> List[str]:
  """The commands that usually follow this run, as `name: command` lines."""
  config_arg, overrides = split_command_line(argv or [])
  config_arg = config_arg or "<config file>"
  data_overrides = [o for o in overrides if o.startswith("--config.dataset.")]
  out = []
  if mode in ("train", "finetune"):
    out.append("evaluate: " + command(config_arg, workdir, overrides,
                                      ["--mode", "eval"]))
  if mode != "export":
    out.append("export: " + command(config_arg, workdir, overrides,
                                    ["--mode", "export"]))
  stage = config.get("stage")
  if mode in ("train", "finetune") and stage == "teacher":
    student = _sibling_config(config_arg, "teacher", "student")
    out.append("student: " + command(
        student or "<student config>",
        _sibling_workdir(workdir, "teacher", "student"),
        data_overrides + [f"--config.teacher_checkpoint={workdir}"]))
  if mode in ("train", "finetune") and stage == "s1":
    s2 = _sibling_config(config_arg, "_s1", "_s2")
    out.append("S2: " + command(
        s2 or "<S2 config>", _sibling_workdir(workdir, "s1", "s2"),
        data_overrides + [f"--config.init_checkpoint={workdir}"],
        ["--mode", "finetune"]))
  if mode == "export" or stage in ("student", "s2"):
    inputs = ("keypoints.npy --focal_px <camera focal>"
              if config.get("trainer") == "lifting" else "photos/")
    out.append("predict: python -m xsup.predict --model_dir "
               f"{os.path.join(workdir, 'export')} --inputs {inputs} "
               "--output_dir predictions/" +
               ("" if mode == "export" else " (after export)"))
  return out


def summary_lines(task, config, workdir: str, mode: str, step: Optional[int],
                  argv: Optional[Sequence[str]] = None,
                  export_dir: Optional[str] = None,
                  splits: Optional[Sequence[str]] = None) -> List[str]:
  """The end-of-run summary (see the module docstring).

  Args:
    task: the run's task (its `baseline_metrics()` are shown when present).
    config: the run's config.
    workdir: the run's directory.
    mode: train, finetune, eval or export.
    step: the step whose evaluations are shown (None: any).
    argv: the command line (for the next commands).
    export_dir: the export written by this run, if any.
    splits: the evaluation names to show (None: all).
  Returns:
    The lines.
  """
  workdir = os.path.abspath(workdir)
  lines = [f"Summary: {mode}, {config.get('trainer')}"
           f"{'/' + config.stage if config.get('stage') else ''}"
           f"{f', step {step}' if step is not None else ''}"]
  evaluations = {k: v for k, v in read_evaluations(workdir).items()
                 if (step is None or v.get("step") == step) and
                 (splits is None or k in splits)}
  baselines = {}
  if evaluations and mode != "export" and hasattr(task, "baseline_metrics"):
    try:
      baselines = task.baseline_metrics()
    except Exception as e:  # pylint: disable=broad-except
      logging.warning("No baseline for the summary: %s", e)
  for split, metrics in evaluations.items():
    line = f"  {split}: {_numbers(metrics, HEADLINE_KEYS)}"
    if "num_samples" in metrics:
      line += f" ({metrics['num_samples']} samples)"
    lines.append(line)
    baseline = _baseline(split, metrics, baselines)
    if baseline:
      lines.append(f"    baseline ({baseline.get('name', 'reference')}): "
                   f"{_numbers(baseline, BASELINE_KEYS)}")
  ckpt = os.path.join(workdir, "checkpoints")
  if os.path.isdir(ckpt):
    steps = sorted(int(n) for n in os.listdir(ckpt) if n.isdigit())
    lines.append(f"  checkpoints: {ckpt} (steps "
                 f"{', '.join(map(str, steps)) or 'none'})")
  if any(n.startswith("events.out.tfevents") for n in os.listdir(workdir)):
    lines.append(f"  TensorBoard events: {workdir} (tensorboard --logdir "
                 f"{workdir})")
  metrics_files = [os.path.join(workdir, "metrics.jsonl")] + [
      os.path.join(workdir, "eval", f"{s}_metrics.json") for s in evaluations]
  present = [p for p in metrics_files if os.path.exists(p)]
  if present:
    lines.append(f"  metrics: {', '.join(present)}")
  if export_dir:
    files = ", ".join(sorted(os.listdir(export_dir)))
    lines.append(f"  export: {export_dir} ({files})")
  commands = next_commands(config, workdir, mode, argv)
  if commands:
    lines.append("Next:")
    lines += [f"  {c}" for c in commands]
  return lines


def summary(task, config, workdir: str, mode: str, step: Optional[int],
            **kwargs) -> None:
  """Prints `summary_lines` (same arguments) on process 0."""
  if jax.process_index() != 0:
    return
  for line in summary_lines(task, config, workdir, mode, step, **kwargs):
    say(line)
