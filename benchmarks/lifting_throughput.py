r"""Throughput and memory of the lifting networks (teacher and student).

Measures, at the paper's shapes (batch 128, 1024-wide 6-layer teacher,
128-wide 4-block student):
  * the full training step (forward, both cycle passes, backward, SGD
    update) in poses/s, and its model FLOPs (XLA's cost analysis of the
    compiled step);
  * inference (pure lifting) at batch 1024 in poses/s and FLOPs;
  * compiles of each program (one per shape expected) and peak memory
    (device allocator on accelerators, process peak RSS on CPU);
  * achieved TFLOP/s of both, and their fraction of the machine's measured
    matmul ceiling (`bench_util.matmul_ceiling`; `--no_ceiling` skips it);
  * the training step's kernel CPU time and page faults
    (`bench_util.HostCost`).
Run as a script with `--impl xsup`, it first restarts as the command line
does (`xsup.host_memory`: 2 MB pages for XLA:CPU's buffers).
One JSON line per (implementation, stage).

`--impl reference` times the same steps of the authors' PyTorch networks
(a checkout of github sjtuxcx/ITES at `--reference_repo`; run it with a
Python that has torch, this script then imports no JAX). For a side-by-side
comparison run the two implementations as separate processes, alternating,
so both see the same machine load and each reports its own peak memory.

    python benchmarks/lifting_throughput.py [--stage teacher] \
        [--stage student] [--steps 20] [--dtype float32|bfloat16]
    python benchmarks/lifting_throughput.py --impl reference \
        --reference_repo /path/to/ITES [--threads 2]
"""

import argparse
import functools
import json
import os
import resource
import sys
import time

import numpy as np


def time_calls(fn, steps: int, warmup: int = 2) -> float:
  """Seconds per call of `fn` (which must block until done)."""
  for _ in range(warmup):
    fn()
  start = time.perf_counter()
  for _ in range(steps):
    fn()
  return (time.perf_counter() - start) / steps


def first_batch(task):
  """The process-local numpy batch of global step 0 of `task`."""
  if hasattr(task, "batch_at"):
    return task.batch_at(0)
  return task.iterator.batch_at(0)


def build_train_step(stage: str, batch: int, dtype: str = "float32"):
  """xsup's jitted `stage` train step at the paper's shapes.

  Returns:
    `(step, args, task)`: `step(*args)` runs one update (the state in
    `args[0]` is donated).
  """
  # pylint: disable=g-import-not-at-top
  import jax
  import jax.numpy as jnp
  from xsup import config_defaults
  from xsup.data import pipeline
  from xsup.train import lifting
  from xsup.train import state as state_lib
  # pylint: enable=g-import-not-at-top
  config = config_defaults.lifting(stage)
  config.batch_size = batch
  config.num_devices = 1
  config.model.dtype = dtype
  rng = np.random.default_rng(0)
  data = {"keypoints_2d": rng.normal(size=(batch * 4, 17, 2)).astype(
      np.float32) * 0.1}
  task = lifting.LiftingTask(config, train_data=data)
  mesh = task.mesh
  key = jax.random.PRNGKey(0)
  state, _, shardings = state_lib.create_sharded(task.init_state, key, mesh)
  extras = {}
  if stage == "student":
    teacher = lifting.build_teacher(config.teacher_model)
    extras = {"teacher_variables": jax.jit(functools.partial(
        teacher.init, train=False))(key, jnp.zeros((2, 17, 2)))}
  step = jax.jit(lambda s, b, k, e: task.train_step(s, b, k, **e),
                 out_shardings=(shardings, state_lib.replicated(mesh)),
                 donate_argnums=(0,))
  batch_arrays = pipeline.shard_batch(first_batch(task), mesh)
  return step, [state, batch_arrays, key, extras], task


def build_inference(stage: str, task, variables, infer_batch: int):
  """`(jitted predict_3d, args)` of `task`'s network at `infer_batch`."""
  # pylint: disable=g-import-not-at-top
  import jax
  import jax.numpy as jnp
  from xsup.train import lifting
  # pylint: enable=g-import-not-at-top
  rng = np.random.default_rng(1)
  infer = jax.jit(functools.partial(lifting.predict_3d, stage, task.model))
  x = jnp.asarray(rng.normal(size=(infer_batch, 17, 2)).astype(np.float32))
  return infer, [variables, x]


def xsup_numbers(stage: str, batch: int, steps: int, infer_batch: int,
                 dtype: str = "float32", ceiling=None):
  """Train and inference poses/s, FLOPs and compile counts of `stage`."""
  # pylint: disable=g-import-not-at-top
  import jax
  from bench_util import CompileCounter, HostCost, cost_flops, peak_memory_mb
  # pylint: enable=g-import-not-at-top
  compiles = CompileCounter()
  step, args, task = build_train_step(stage, batch, dtype)
  train_flops = cost_flops(step.lower(*args).compile())

  def train_once():
    state, metrics = step(*args)
    args[0] = state
    jax.block_until_ready(metrics["loss"])

  before = compiles.count
  for _ in range(2):  # Warm-up, outside the host cost.
    train_once()
  with HostCost() as host:
    train_s = time_calls(train_once, steps, warmup=0)
  timed_compiles = compiles.count - before
  state = args[0]
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  infer, infer_args = build_inference(stage, task, variables, infer_batch)
  infer_flops = cost_flops(infer.lower(*infer_args).compile())
  before = compiles.count
  infer_s = time_calls(lambda: jax.block_until_ready(infer(*infer_args)),
                       steps)
  timed_compiles += compiles.count - before
  rates = {"train_tflops": train_flops / train_s / 1e12,
           "infer_tflops": infer_flops / infer_s / 1e12}
  if ceiling:  # FLOP/s of `bench_util.matmul_ceiling`.
    rates["matmul_ceiling_tflops"] = ceiling / 1e12
    rates["train_fraction_of_ceiling"] = train_flops / train_s / ceiling
    rates["infer_fraction_of_ceiling"] = infer_flops / infer_s / ceiling
  return {"impl": "xsup", "stage": stage, "dtype": dtype, "batch": batch,
          "train_poses_per_s": batch / train_s,
          "infer_poses_per_s": infer_batch / infer_s,
          "train_step_flops": train_flops,
          "infer_flops": infer_flops, **rates,
          # pylint: disable-next=protected-access
          "train_compiles": step._cache_size(),
          # pylint: disable-next=protected-access
          "infer_compiles": infer._cache_size(),
          "compiles_while_timed": timed_compiles,
          **{f"train_{k}_per_step": v
             for k, v in host.per_call(steps).items()},
          "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
          "peak_memory_mb": peak_memory_mb()}


def reference_numbers(repo: str, stage: str, batch: int, steps: int,
                      infer_batch: int, threads: int):
  """The same measurements for the authors' PyTorch networks."""
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(threads)
  sys.path.insert(0, repo)
  from common import model_student, model_teacher  # pylint: disable=g-import-not-at-top
  from common.function import adj_mx_from_edges  # pylint: disable=g-import-not-at-top
  from xsup import skeleton  # pylint: disable=g-import-not-at-top
  if stage == "teacher":
    net = model_teacher.Teacher_net(17, 17, 2)
  else:
    adj = adj_mx_from_edges(17, list(skeleton.H36M17.bones), sparse=False)
    groups = [list(g) for g in skeleton.H36M17_NONLOCAL_GROUPS]
    net = model_student.Student_net(adj, 128, num_layers=4, p_dropout=0.0,
                                    nodes_group=groups)
  opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9,
                        weight_decay=5e-4)
  x = torch.randn(batch, 17, 2) * 0.1
  target = torch.randn(batch, 17, 1) * 0.1

  def train_once():
    opt.zero_grad()
    if stage == "teacher":
      preds = net(x, align_to_root=True)
      loss = 5 * preds["l_reprojection"] + preds["l_cycle_consistent"]
    else:
      preds = net(x)
      loss = 5 * (preds["depth"] - target).abs().mean() + preds[
          "l_reconstruct"]
    loss.backward()
    opt.step()

  net.train()
  train_s = time_calls(train_once, steps)
  net.eval()
  if stage == "teacher":
    net.cycle_consistent = False  # Inference is the lifting pass alone.
  xi = torch.randn(infer_batch, 17, 2) * 0.1

  def infer_once():
    with torch.no_grad():
      if stage == "teacher":
        net(xi)
      else:
        net.predict(xi)

  infer_s = time_calls(infer_once, steps)
  return {"impl": "reference-pytorch", "stage": stage, "batch": batch,
          "threads": threads, "train_poses_per_s": batch / train_s,
          "infer_poses_per_s": infer_batch / infer_s,
          "peak_memory_mb": resource.getrusage(
              resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None, restart: bool = False):
  """`restart`: first restart the process as the command line does
  (`xsup.host_memory`)."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--impl", default="xsup",
                      choices=["xsup", "reference"])
  parser.add_argument("--stage", action="append",
                      choices=["teacher", "student"],
                      help="repeatable; default both")
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--infer_batch", type=int, default=1024)
  parser.add_argument("--dtype", default="float32",
                      choices=["float32", "bfloat16"])
  parser.add_argument("--reference_repo", default=None)
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  parser.add_argument("--no_ceiling", action="store_true",
                      help="skip measuring the matmul ceiling")
  parser.add_argument("--json", default=None, help="also write results here")
  args = parser.parse_args(argv)
  if args.impl == "xsup" and restart:
    from xsup import host_memory  # pylint: disable=g-import-not-at-top
    host_memory.restart_with_huge_pages(sys.argv)  # As the command line.
  ceiling = None
  if args.impl == "xsup" and not args.no_ceiling:
    from bench_util import matmul_ceiling  # pylint: disable=g-import-not-at-top
    ceiling = matmul_ceiling(args.dtype)
  if args.impl == "reference" and not args.reference_repo:
    parser.error("--impl reference needs --reference_repo")
  rows = []
  for stage in args.stage or ["teacher", "student"]:
    if args.impl == "xsup":
      row = xsup_numbers(stage, args.batch, args.steps, args.infer_batch,
                         args.dtype, ceiling)
    else:
      row = reference_numbers(args.reference_repo, stage, args.batch,
                              args.steps, args.infer_batch, args.threads)
    rows.append(row)
    print(json.dumps(row), flush=True)  # One JSON line per stage.
  print(f"{'impl':<18} {'stage':<8} {'train poses/s':>14} "
        f"{'infer poses/s':>14} {'GFLOP/step':>10} {'peak MB':>9}")
  for r in rows:
    flops = r.get("train_step_flops")
    print(f"{r['impl']:<18} {r['stage']:<8} {r['train_poses_per_s']:>14.0f} "
          f"{r['infer_poses_per_s']:>14.0f} "
          f"{flops / 1e9 if flops else float('nan'):>10.1f} "
          f"{r['peak_memory_mb']:>9.0f}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=2)
  return rows


if __name__ == "__main__":
  main(sys.argv[1:], restart=True)
