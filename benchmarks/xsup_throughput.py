r"""Throughput and memory of the X-as-Supervision S2 training step.

Times the full S2 step of `xsup.train.xsup` with every loss on: one
detector pass over the synthetic and target images, skeleton rendering,
physique network, symmetry, the discriminator update and the detector +
physique update (two Adam optimisers), on random data of the given shape
(target views V, synthetic renders with one view each, as SURREAL).

Presets (`--preset`, repeatable):
  * `r18_128`: ResNet-18 at 128x128;
  * `r50_256`: ResNet-50 at 256x256 (the published setting);
both with the published head (depth_dim 64, 3 hypotheses, 256 filters);
  * `demo_64`: the synthetic default's model (`synthetic_multi_s2`: a
    quarter-width ResNet-18, depth_dim 32, 64 head filters) at 64x64.

Reports per preset: examples/s (target examples of V views), detector
images/s (target + synthetic images through the detector), seconds per
step, compile seconds and peak memory (device allocator on accelerators,
process peak RSS on CPU, which includes the whole Python process), the
step's FLOPs (XLA's cost analysis) and achieved TFLOP/s, the MFU against a
known chip's peak, the fraction of the machine's measured matmul
ceiling (`bench_util.matmul_ceiling`; `--no_ceiling` skips it), and the
kernel CPU time and page faults per step (`bench_util.HostCost`). Run as a
script, it first restarts as the command line does (`xsup.host_memory`).

    python benchmarks/xsup_throughput.py [--preset r18_128] \
        [--preset r50_256] [--batch 8] [--views 4] [--steps 10] \
        [--dtype float32|bfloat16] [--devices 1] [--depth_dim 32] \
        [--zero_loss physique ...]

`--zero_loss TERM` (repeatable) sets that loss weight to 0, which removes
the term and what only it needs from the compiled step: the difference in
seconds per step against the full step is that part's cost (e.g.
`physique`: the physique network; `mask` and `physique` together: the line
mask too; every target term: the target images' detector pass).
"""

import argparse
import json
import os
import resource
import sys
import time
from typing import Sequence

import jax
import numpy as np

from bench_util import (CompileCounter, HostCost, cost_flops, matmul_ceiling,
                        mfu, peak_memory_mb)
from xsup_presets import PRESETS, body_disc



def random_data(rng: np.random.Generator, num: int, views: int, size: int):
  """Raw builder-like arrays: target (V views) and synthetic (1 view)."""
  def images(n, v):
    return rng.integers(0, 256, (n, v, size, size, 3), dtype=np.uint8)

  def masks(n, v):
    disc = body_disc(size)
    return np.broadcast_to((disc * 255).astype(np.uint8)[..., None],
                           (n, v, size, size, 1)).copy()

  target = {"image": images(num, views), "mask": masks(num, views)}
  n_syn = num * views
  synthetic = {
      "image": images(n_syn, 1), "mask": masks(n_syn, 1),
      "joints_2d_patch": rng.uniform(0.2 * size, 0.8 * size,
                                     (n_syn, 1, 18, 2)).astype(np.float32),
      "joints_depth": rng.uniform(-300, 300, (n_syn, 1, 18)).astype(
          np.float32)}
  return {"target": target, "synthetic": synthetic}


def build_step(preset: str, batch: int, views: int, dtype: str = "float32",
               devices: int = 1, depth_dim: int = 0,
               zero_loss: Sequence[str] = ()):
  """The jitted S2 step of `preset` on random data.

  Returns:
    `(step, args, info)`: `step(*args)` runs one update (the state in
    `args[0]` is donated); `info` holds the config, mesh, state shardings,
    the number of detector images per step and the init seconds.
  """
  # pylint: disable=g-import-not-at-top
  from xsup import config_defaults
  from xsup.data import pipeline
  from xsup.train import state as state_lib
  from xsup.train import xsup as xsup_train
  # pylint: enable=g-import-not-at-top
  spec = PRESETS[preset]
  config = config_defaults.xsup("s2")
  for key, value in spec.items():
    if key != "image_size":
      config.model[key] = value
  config.model.dtype = dtype
  if depth_dim:
    config.model.depth_dim = depth_dim
  for term in zero_loss:
    if term not in xsup_train.LOSS_TERMS:
      raise ValueError(f"--zero_loss {term!r}: not a loss term; known: "
                       f"{', '.join(xsup_train.LOSS_TERMS)}")
    config.loss[term] = 0.0
  config.batch_size = batch
  config.num_devices = devices
  rng = np.random.default_rng(0)
  task = xsup_train.XSupTask(
      config, train_data=random_data(rng, batch, views, spec["image_size"]))
  mesh = task.mesh
  key = jax.random.PRNGKey(0)
  start = time.perf_counter()
  state, _, shardings = state_lib.create_sharded(task.init_state, key, mesh)
  jax.block_until_ready(state)
  init_s = time.perf_counter() - start
  extras = task.step_extras()
  step = jax.jit(lambda s, b, k, e: task.train_step(s, b, k, **e),
                 out_shardings=(shardings, state_lib.replicated(mesh)),
                 donate_argnums=(0,))
  batch_arrays = pipeline.shard_batch(task.batch_at(0), mesh)
  images = batch * views + batch_arrays["synthetic_image"].shape[0]
  info = {"config": config, "mesh": mesh, "images": images,
          "init_s": init_s}
  return step, [state, batch_arrays, key, extras], info


def benchmark(preset: str, batch: int, views: int, steps: int, dtype: str,
              devices: int, depth_dim: int = 0, peak=None, ceiling=None,
              zero_loss: Sequence[str] = ()):
  """One preset's measurements (one JSON-serialisable dict)."""
  step, args, info = build_step(preset, batch, views, dtype, devices,
                                depth_dim, zero_loss)
  compiles = CompileCounter()
  start = time.perf_counter()
  compiled = step.lower(*args).compile()
  compile_s = time.perf_counter() - start
  flops = cost_flops(compiled)
  state, metrics = step(*args)  # Warm-up; reuses the compiled program.
  jax.block_until_ready(metrics)
  _, batch_arrays, key, extras = args
  keys = [jax.random.fold_in(key, i) for i in range(steps)]
  jax.block_until_ready(keys)
  compiles_before = compiles.count
  start = time.perf_counter()
  with HostCost() as host:
    for step_key in keys:
      state, metrics = step(state, batch_arrays, step_key, extras)
    jax.block_until_ready(metrics)
  per_step = (time.perf_counter() - start) / steps
  finite = all(np.isfinite(float(v)) for v in metrics.values())
  row = {
      "preset": preset, "batch": batch, "views": views, "dtype": dtype,
      "depth_dim": info["config"].model.depth_dim,
      "zero_loss": sorted(zero_loss),
      "devices": info["mesh"].size, "step_s": per_step,
      "examples_per_s": batch / per_step,
      "detector_images_per_s": info["images"] / per_step,
      "step_flops": flops,
      "init_s": info["init_s"], "compile_s": compile_s,
      "step_compiles": step._cache_size(),  # pylint: disable=protected-access
      "compiles_while_timed": compiles.count - compiles_before,
      "peak_memory_mb": peak_memory_mb(), "finite": finite,
      **{f"{k}_per_step": v for k, v in host.per_call(steps).items()},
      "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
  }
  row.update(mfu(flops / per_step, dtype, peak, ceiling))
  return row


def main(argv=None, restart: bool = False):
  """`restart`: first restart the process as the command line does
  (`xsup.host_memory`)."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--preset", action="append", choices=sorted(PRESETS),
                      help="repeatable; default r18_128")
  parser.add_argument("--batch", type=int, default=8,
                      help="target examples per step")
  parser.add_argument("--views", type=int, default=4)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--dtype", default="float32",
                      choices=["float32", "bfloat16"])
  parser.add_argument("--devices", type=int, default=1)
  parser.add_argument("--depth_dim", type=int, default=0,
                      help="depth bins D (default 64, the published head; "
                      "the reference code needs D = input / 4 at 128 px)")
  parser.add_argument("--peak_tflops", type=float, default=None,
                      help="chip peak for the MFU (default: known chips)")
  parser.add_argument("--no_ceiling", action="store_true",
                      help="skip measuring the matmul ceiling")
  parser.add_argument("--zero_loss", action="append", default=[],
                      help="repeatable: a loss term whose weight is set to 0"
                      " (time the step without it)")
  parser.add_argument("--json", help="also write the rows to this file")
  args = parser.parse_args(argv)
  if restart:
    from xsup import host_memory  # pylint: disable=g-import-not-at-top
    host_memory.restart_with_huge_pages(sys.argv)  # As the command line.
  peak = args.peak_tflops * 1e12 if args.peak_tflops else None
  ceiling = None if args.no_ceiling else matmul_ceiling(args.dtype)
  rows = []
  for preset in args.preset or ["r18_128"]:
    rows.append(benchmark(preset, args.batch, args.views, args.steps,
                          args.dtype, args.devices, args.depth_dim, peak,
                          ceiling, args.zero_loss))
    print(json.dumps(rows[-1]), flush=True)  # One JSON line per preset.
  device = jax.devices()[0]
  print(f"\nXSup S2 step on {len(jax.devices())} x {device.platform} "
        f"({device.device_kind}), {os.cpu_count()} CPU cores visible")
  header = (f"{'preset':<9} {'batch':>5} {'views':>5} {'dtype':<8} "
            f"{'s/step':>8} {'images/s':>9} {'GFLOP/step':>10} "
            f"{'TFLOP/s':>8} {'MFU':>6} {'of ceil':>7} {'compile s':>9} "
            f"{'peak MB':>8}")
  print(header)
  print("-" * len(header))
  for r in rows:
    mfu_text = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
    ceil = r.get("fraction_of_matmul_ceiling")
    ceil_text = f"{ceil:.0%}" if ceil is not None else "-"
    print(f"{r['preset']:<9} {r['batch']:>5} {r['views']:>5} "
          f"{r['dtype']:<8} {r['step_s']:>8.3f} "
          f"{r['detector_images_per_s']:>9.2f} {r['step_flops'] / 1e9:>10.1f} "
          f"{r['achieved_tflops']:>8.3f} {mfu_text:>6} {ceil_text:>7} "
          f"{r['compile_s']:>9.1f} {r['peak_memory_mb']:>8.0f}"
          + (f"  without {', '.join(r['zero_loss'])}" if r["zero_loss"]
             else ""))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=2)
  return rows


if __name__ == "__main__":
  main(sys.argv[1:], restart=True)
