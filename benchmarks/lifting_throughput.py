r"""Throughput and memory of the lifting networks (teacher and student).

Measures, at the paper's shapes (batch 128, 1024-wide 6-layer teacher,
128-wide 4-block student):
  * the full training step (forward, both cycle passes, backward, SGD
    update) in poses/s;
  * inference (pure lifting) at batch 1024 in poses/s;
  * peak memory (device allocator on accelerators, process RSS on CPU).

With `--reference_repo` pointing at a checkout of the authors' PyTorch code
(github sjtuxcx/ITES) and torch installed, the same steps of the reference
networks are timed in the same run on the same machine, side by side.

    python benchmarks/lifting_throughput.py [--steps 20] \
        [--reference_repo /path/to/ITES] [--threads 2]
"""

import argparse
import functools
import json
import os
import resource
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np


def peak_memory_mb() -> float:
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return stats["peak_bytes_in_use"] / 2**20
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_calls(fn, steps: int, warmup: int = 2) -> float:
  """Seconds per call of `fn` (which must block until done)."""
  for _ in range(warmup):
    fn()
  start = time.perf_counter()
  for _ in range(steps):
    fn()
  return (time.perf_counter() - start) / steps


def xsup_numbers(stage: str, batch: int, steps: int, infer_batch: int):
  """(train poses/s, inference poses/s) of xsup's `stage` networks."""
  from xsup import config_defaults  # pylint: disable=g-import-not-at-top
  from xsup.train import lifting  # pylint: disable=g-import-not-at-top
  from xsup.train import state as state_lib  # pylint: disable=g-import-not-at-top
  config = config_defaults.lifting(stage)
  config.batch_size = batch
  config.num_devices = 1
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
  from xsup.data import pipeline  # pylint: disable=g-import-not-at-top
  batch_arrays = pipeline.shard_batch(task.batch_at(0), mesh)
  holder = {"state": state}

  def train_once():
    holder["state"], metrics = step(holder["state"], batch_arrays, key,
                                    extras)
    jax.block_until_ready(metrics["loss"])

  train_s = time_calls(train_once, steps)
  variables = {"params": holder["state"].params,
               "batch_stats": holder["state"].batch_stats}
  infer = jax.jit(functools.partial(lifting.predict_3d, stage, task.model))
  x = jnp.asarray(rng.normal(size=(infer_batch, 17, 2)).astype(np.float32))
  infer_s = time_calls(lambda: jax.block_until_ready(infer(variables, x)),
                       steps)
  return batch / train_s, infer_batch / infer_s


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
  xi = torch.randn(infer_batch, 17, 2) * 0.1

  def infer_once():
    with torch.no_grad():
      if stage == "teacher":
        net(xi)
      else:
        net.predict(xi)

  infer_s = time_calls(infer_once, steps)
  return batch / train_s, infer_batch / infer_s


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--infer_batch", type=int, default=1024)
  parser.add_argument("--reference_repo", default=None)
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  parser.add_argument("--json", default=None, help="also write results here")
  args = parser.parse_args()
  print(f"backend={jax.default_backend()} devices={jax.devices()}")
  rows = []
  for stage in ("teacher", "student"):
    train, infer = xsup_numbers(stage, args.batch, args.steps,
                                args.infer_batch)
    rows.append({"impl": "xsup", "stage": stage, "train_poses_per_s": train,
                 "infer_poses_per_s": infer,
                 "peak_memory_mb": peak_memory_mb()})
    if args.reference_repo:
      ref_train, ref_infer = reference_numbers(
          args.reference_repo, stage, args.batch, args.steps,
          args.infer_batch, args.threads)
      rows.append({"impl": "reference-pytorch", "stage": stage,
                   "train_poses_per_s": ref_train,
                   "infer_poses_per_s": ref_infer,
                   "peak_memory_mb": resource.getrusage(
                       resource.RUSAGE_SELF).ru_maxrss / 1024})
  print(f"{'impl':<18} {'stage':<8} {'train poses/s':>14} "
        f"{'infer poses/s':>14} {'peak MB':>9}")
  for r in rows:
    print(f"{r['impl']:<18} {r['stage']:<8} {r['train_poses_per_s']:>14.0f} "
          f"{r['infer_poses_per_s']:>14.0f} {r['peak_memory_mb']:>9.0f}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=2)


if __name__ == "__main__":
  main()
