"""Real multi-process training: two processes on this machine.

Each process runs the real command line (`tests/multihost_worker.py` wraps
`python -m xsup.main`) with 2 CPU devices; they join through
`jax.distributed` (coordinator on 127.0.0.1, gloo collectives), so the mesh
has 4 global devices. Each test trains for 4 steps with a global batch of 8,
checkpoints at step 2 from both processes, is killed while step 2's batch is
being delivered, resumes (lifting teacher only), and must end with the parameters of one process
with 4 devices on the same global batches. Each process must have read only
its half of every global batch, and only process 0 may write metrics, events
and evaluation files.

The two topologies sum the gradients of the 4 devices in different orders
(gloo across processes, in-process otherwise), so they agree to the last
bits only. Adam's first steps divide each gradient entry by its own
magnitude, which turns those last bits of a near-zero entry into a visible
change (1e-5 after 4 steps of the lifting teacher with Adam, 3e-8 with SGD).
So the lifting teacher trains with the paper's SGD here, and the
X-as-Supervision run with an Adam epsilon of 1 (`optimizer.eps`), which makes
its update a momentum-averaged gradient step (4.9e-5 apart after 4 steps with
an epsilon of 1e-3). The kill and resume are the same code for both methods,
so the X-as-Supervision run, the slowest to compile, is not interrupted.
"""

import collections
import glob
import importlib.util
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from repo_configs import REPO
from xla_flags_for_tests import xla_flags
from xsup import multihost
from xsup.data import sources
from xsup.train import loop
from xsup.train import xsup as xsup_train

WORKER = os.path.join(REPO, "tests", "multihost_worker.py")
GLOBAL_BATCH = 8
STEPS = 4
CRASH_AT = 2
# A tiny S2 run on more examples than the `tiny` builder config holds (a
# global batch of 8 needs at least 8).
XSUP_CONFIG = """
from xsup import config_defaults


def get_config():
  c = config_defaults.xsup_synthetic("s2", "tiny")
  for part in (c.dataset, c.synthetic):
    part.builder_overrides.num_train = 8
    part.builder_overrides.num_synthetic = 8
    part.builder_overrides.num_test = 2
  c.dataset.eval_splits = ()  # The lifting test covers evaluation.
  return c
"""


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(num_processes, devices, cli_args, tmp_path, tag, crash_at=0):
  """Runs the processes to completion; returns [(returncode, output, pid)]."""
  port = _free_port()
  # "rbg" keys compile parameter initialisation several times faster.
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DEFAULT_PRNG_IMPL="rbg",
             JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  env.pop("XLA_FLAGS", None)
  procs = []
  for p in range(num_processes):
    cmd = [sys.executable, WORKER, "--devices", str(devices),
           "--record", str(tmp_path / f"{tag}_process{p}.jsonl")]
    if crash_at:
      cmd += ["--crash_at_step", str(crash_at)]
    cmd += ["--"] + cli_args
    if num_processes > 1:
      cmd += [f"--coordinator_address=127.0.0.1:{port}",
              f"--num_processes={num_processes}", f"--process_id={p}",
              "--distributed_timeout_s=120"]
    procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, text=True,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT))
  results = []
  for proc in procs:
    out, _ = proc.communicate(timeout=600)
    results.append((proc.returncode, out, proc.pid))
  return results


def _tails(results, chars=3000):
  """The end of every process's output, for a failure message."""
  return "\n".join(f"--- process {p} (exit {code}):\n{out[-chars:]}"
                   for p, (code, out, _) in enumerate(results))


def _records(path):
  """{(source, step): indices} read by one process."""
  out = {}
  if os.path.exists(path):
    for line in open(path):
      r = json.loads(line)
      out[(r["source"], r["step"])] = r["indices"]
  return out


def _event_pids(workdir):
  """Process ids in the names of the TensorBoard event files."""
  names = glob.glob(os.path.join(workdir, "events.out.tfevents.*"))
  # events.out.tfevents.<time>.<host>.<pid>.<n>.v2 (the host may hold dots)
  return {int(os.path.basename(n).split(".")[-3]) for n in names}


def _run_twice_and_once(tmp_path, cli_args):
  """The killed + resumed 2-process run and the 1-process reference."""
  multi = str(tmp_path / "multi")
  killed = _launch(2, 2, cli_args + ["--workdir", multi], tmp_path, "killed",
                   crash_at=CRASH_AT)
  # One process is killed; the other then dies too (the distributed
  # runtime aborts when a peer disappears), or is killed first.
  assert any(code == 3 for code, _, _ in killed), _tails(killed)
  for code, out, _ in killed:
    assert code != 0, _tails(killed)
  step_dir = os.path.join(multi, "checkpoints", str(CRASH_AT))
  # Both processes wrote their input-pipeline state into the checkpoint.
  assert {"process_0-of-2.json", "process_1-of-2.json"} <= set(
      os.listdir(os.path.join(step_dir, "data")))
  resumed = _launch(2, 2, cli_args + ["--workdir", multi], tmp_path,
                    "resumed")
  for code, out, _ in resumed:
    assert code == 0, _tails(resumed)
    assert f"Resuming from {os.path.join(multi, 'checkpoints')} step " \
           f"{CRASH_AT}" in out
  return multi, _run_reference(tmp_path, cli_args), killed, resumed


def _run_reference(tmp_path, cli_args):
  """The 1-process, 4-device reference run; returns its workdir."""
  single = str(tmp_path / "single")
  reference = _launch(1, 4, cli_args + ["--workdir", single], tmp_path,
                      "single")
  assert reference[0][0] == 0, reference[0][1][-4000:]
  return single


def _check_same_parameters(multi, single):
  got, got_step = loop.load_checkpoint_tree(multi)
  want, want_step = loop.load_checkpoint_tree(single)
  assert got_step == want_step == STEPS
  flat_got = _flatten(got["params"])
  flat_want = _flatten(want["params"])
  assert flat_got.keys() == flat_want.keys()
  for name, value in flat_want.items():
    np.testing.assert_allclose(flat_got[name], value, rtol=1e-6, atol=1e-6,
                               err_msg=name)
  # The run moved away from its initialisation (not a vacuous match).
  assert any(np.any(v != 0) for v in flat_want.values())


def _flatten(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}/"))
    else:
      out[prefix + k] = np.asarray(v)
  return out


def _check_shards(tmp_path, runs=("killed", "resumed")):
  """Each process read only its half of each global batch (the reference
  process read the whole batch), in the killed and the resumed run (or in
  the one uninterrupted run, `runs=("whole",)`)."""
  reference = _records(tmp_path / "single_process0.jsonl")
  assert reference
  checked = collections.Counter()
  for run in runs:
    parts = [_records(tmp_path / f"{run}_process{p}.jsonl") for p in (0, 1)]
    for key in parts[0].keys() | parts[1].keys():
      first, second = parts[0].get(key), parts[1].get(key)
      if first is None or second is None:
        continue  # Read ahead by one process only before the kill.
      assert len(first) == len(second) == GLOBAL_BATCH // 2, key
      assert first + second == reference[key], key
      checked[run] += 1
  # Every step's batch was checked across the runs.
  steps = {step for _, step in reference}
  assert set(range(STEPS)) <= steps
  if runs == ("whole",):
    assert checked["whole"] >= STEPS
  else:
    assert (checked["killed"] >= CRASH_AT and
            checked["resumed"] >= STEPS - CRASH_AT)


def _check_only_process_0_wrote(multi, *runs):
  """Only process 0 of each 2-process launch in `runs` wrote events and
  metrics."""
  writers = {run[0][2] for run in runs}
  others = {run[1][2] for run in runs}
  pids = _event_pids(multi)
  assert pids and pids <= writers and not pids & others
  records = [json.loads(l) for l in open(os.path.join(multi,
                                                      "metrics.jsonl"))]
  train_steps = [r["step"] for r in records if any(
      k.startswith("train/") for k in r)]
  # One writer: no step logged twice (a resumed run logs from step 3).
  assert len(train_steps) == len(set(train_steps))
  assert max(train_steps) == STEPS


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """Both datasets prepared once, before the processes start."""
  path = str(tmp_path_factory.mktemp("tfds"))
  sources.prepare("synthetic_lifting", "tiny", path)
  return path


def _train_and_compare(tmp_path, config_args, kill_and_resume=True):
  """The whole check for one config (`config_args`: --config and its
  dataset overrides); without `kill_and_resume` the 2-process run is not
  interrupted."""
  cli_args = config_args + [
      f"--config.batch_size={GLOBAL_BATCH}", f"--config.total_steps={STEPS}",
      "--config.checkpoint_every_steps=2", "--config.log_every_steps=1",
      f"--config.eval_every_steps={STEPS}", "--config.num_devices=0"]
  if kill_and_resume:
    multi, single, killed, resumed = _run_twice_and_once(tmp_path, cli_args)
    runs = (killed, resumed)
    _check_shards(tmp_path)
  else:
    multi = str(tmp_path / "multi")
    whole = _launch(2, 2, cli_args + ["--workdir", multi], tmp_path, "whole")
    for code, _, _ in whole:
      assert code == 0, _tails(whole)
    single = _run_reference(tmp_path, cli_args)
    runs = (whole,)
    _check_shards(tmp_path, runs=("whole",))
  _check_same_parameters(multi, single)
  _check_only_process_0_wrote(multi, *runs)
  return multi


def test_two_processes_train_the_lifting_teacher_like_one(tmp_path, data_dir):
  multi = _train_and_compare(tmp_path, [
      "--config", os.path.join(REPO, "configs",
                               "ites_teacher_synthetic.py:tiny"),
      f"--config.dataset.data_dir={data_dir}",
      "--config.optimizer.name=sgd"])
  with open(os.path.join(multi, "eval", "test_metrics.json")) as f:
    assert json.load(f)["step"] == STEPS


def test_two_processes_train_x_as_supervision_s2_like_one(tmp_path,
                                                          data_dir):
  config_path = tmp_path / "tiny_s2.py"
  config_path.write_text(XSUP_CONFIG)
  spec = importlib.util.spec_from_file_location("tiny_s2", config_path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  sources.prepare(config.dataset.name,
                  xsup_train.builder_config(config.dataset), data_dir)
  _train_and_compare(tmp_path, [
      "--config", str(config_path),
      f"--config.dataset.data_dir={data_dir}",
      f"--config.synthetic.data_dir={data_dir}",
      "--config.optimizer.eps=1.0"], kill_and_resume=False)


# ---------------------------------------------------------------------------
# Where the settings come from, and a misconfigured cluster.

_CLUSTER_VARIABLES = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES",
                      "JAX_PROCESS_ID", "SLURM_JOB_ID", "SLURM_STEP_NODELIST",
                      "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID",
                      "OMPI_MCA_orte_hnp_uri")


def test_settings_come_from_flags_then_environment_then_cluster(monkeypatch):
  for name in _CLUSTER_VARIABLES:
    monkeypatch.delenv(name, raising=False)
  assert multihost.resolve().source == multihost.SINGLE
  assert not multihost.resolve().multi_process
  flags = multihost.resolve("10.0.0.1:1234", 4, 2)
  assert (flags.source, flags.coordinator_address, flags.num_processes,
          flags.process_id) == ("command line", "10.0.0.1:1234", 4, 2)
  monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.2:99")
  monkeypatch.setenv("JAX_NUM_PROCESSES", "8")
  monkeypatch.setenv("JAX_PROCESS_ID", "3")
  env = multihost.resolve()
  assert (env.source, env.coordinator_address, env.num_processes,
          env.process_id) == ("environment", "10.0.0.2:99", 8, 3)
  assert multihost.resolve("10.0.0.1:1234", 4, 2).source == "command line"
  assert multihost.resolve(enabled=False).source == "disabled"
  monkeypatch.delenv("JAX_COORDINATOR_ADDRESS")
  for name, value in (("SLURM_JOB_ID", "7"), ("SLURM_STEP_NODELIST", "n1"),
                      ("SLURM_NTASKS", "2"), ("SLURM_PROCID", "1"),
                      ("SLURM_LOCALID", "0")):
    monkeypatch.setenv(name, value)
  slurm = multihost.resolve()
  assert slurm.source == "cluster SlurmCluster" and slurm.multi_process
  monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
  monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.2:99")
  with pytest.raises(ValueError, match="JAX_NUM_PROCESSES='two'"):
    multihost.resolve()


def test_unreachable_coordinator_stops_the_run(tmp_path):
  workdir = tmp_path / "run"
  port = _free_port()  # Nothing listens there.
  env = dict(os.environ, XLA_FLAGS=xla_flags(2))
  result = subprocess.run(
      [sys.executable, "-m", "xsup.main", "--config",
       os.path.join(REPO, "configs", "ites_teacher_synthetic.py:tiny"),
       "--workdir", str(workdir), f"--coordinator_address=127.0.0.1:{port}",
       "--num_processes=2", "--process_id=1", "--distributed_timeout_s=2"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode != 0
  assert "Multi-host initialisation failed" in result.stderr
  assert f"coordinator 127.0.0.1:{port}" in result.stderr
  assert "from the command line" in result.stderr
  # It stopped before training alone: nothing was written.
  assert not workdir.exists() or not os.listdir(workdir)
