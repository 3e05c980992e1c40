r"""Throughput of the X-as-Supervision detector's training step, side by side.

Times one training step (forward, backward, Adam) on random images of
  * `--part detector`: the detector alone (ResNet + deconv head +
    multi-hypothesis integral), loss = the mean of the predicted joints (x,
    y and every depth hypothesis), so the gradient runs through the
    integral, the head and the backbone as in S2;
  * `--part detector+mask` (default): also, for the first half of the
    images (S2's target views; the other half stands for its synthetic
    renders), the skeleton line mask rendered from hypothesis 0 and the
    physique network's body mask, both scored against a mask by mean
    squared error (S2's mask and physique reconstruction terms).
These are most of the S2 step's FLOPs (the rest: the discriminator and
small losses); the whole S2 step cannot be compared side by side because the
authors' step needs SMPL model files.

`--impl xsup` (default) builds `xsup.models.detector.IntegralDetector` from
the S2 config with the preset's overrides (`xsup_presets.PRESETS`); run as
a script, it first restarts as the command line does (`xsup.host_memory`).
`--impl reference --reference_repo PATH` builds the authors' PyTorch module
(`modules/keypoint_detector_integral_multi.KPDetector3DMulti` of a checkout
of github Charrrrrlie/X-as-Supervision; run with a Python that has torch
and torchvision; no JAX is imported) with the same depth, joints, depth bins,
hypotheses and window, random initial weights (no model-zoo download), and
BatchNorm in place of SyncBatchNorm on one process. Run the two as separate
processes, alternating, so both see the same machine load.

    python benchmarks/detector_throughput.py [--preset r18_128] \
        [--images 64] [--steps 5] [--dtype float32|bfloat16]
    python benchmarks/detector_throughput.py --impl reference \
        --reference_repo /path/to/X-as-Supervision [--threads 2]

Prints one JSON line per preset: detector images/s, seconds per step, the first
step's seconds (compile included for xsup), process peak RSS and, for xsup,
the step's FLOPs (XLA's cost analysis), achieved TFLOP/s, and kernel CPU time
and page faults per step (`bench_util.HostCost`).
"""

import argparse
import json
import os
import resource
import sys
import time

import numpy as np

from xsup_presets import PRESETS, body_disc

NUM_JOINTS = 18  # The H36M-18 layout of the S2 configs.


def _peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _settings(preset: str, depth_dim: int):
  """The S2 config's detector fields with the preset's overrides."""
  from xsup import config_defaults  # pylint: disable=g-import-not-at-top
  model = config_defaults.xsup("s2").model
  for key, value in PRESETS[preset].items():
    if key != "image_size":
      model[key] = value
  if depth_dim:
    model.depth_dim = depth_dim
  return model


def _masks(num: int, size: int) -> np.ndarray:
  """`[num, size, size]` float32 0/1 discs (stand-in body masks)."""
  return np.broadcast_to(body_disc(size).astype(np.float32),
                         (num, size, size)).copy()


def xsup_numbers(preset: str, images: np.ndarray, steps: int, dtype: str,
                 depth_dim: int, with_mask: bool):
  """Times the xsup training step on `images` `[N, H, W, 3]`."""
  # pylint: disable=g-import-not-at-top
  import jax
  import jax.numpy as jnp
  import optax
  from bench_util import HostCost, cost_flops
  from xsup.models import detector as detector_lib
  from xsup.models import physique as physique_lib
  from xsup.models import precision
  from xsup.models import render
  from xsup.train import xsup as xsup_train
  # pylint: enable=g-import-not-at-top
  model_config = _settings(preset, depth_dim)
  model = detector_lib.IntegralDetector(
      **xsup_train.detector_kwargs(model_config),
      dtype=precision.compute_dtype(dtype))
  physique = physique_lib.PhysiqueNet(
      features=tuple(model_config.physique_features))
  x = jnp.asarray(images)
  size, half = images.shape[1], len(images) // 2
  masks = jnp.asarray(_masks(half, size))[..., None]
  key = jax.random.PRNGKey(0)
  det_vars = jax.jit(lambda k: model.init(k, x[:2], train=False))(key)
  phys_vars = jax.jit(lambda k: physique.init(
      k, jnp.zeros((1, size, size, 1)), train=False))(key)
  params = {"detector": det_vars["params"], "physique": phys_vars["params"]}
  stats = {"detector": det_vars["batch_stats"],
           "physique": phys_vars["batch_stats"]}
  optimizer = optax.adam(1e-4)
  state = (params, stats, optimizer.init(params))

  def step(state, x):
    params, stats, opt_state = state

    def loss_fn(p):
      out, det_updates = model.apply(
          {"params": p["detector"], "batch_stats": stats["detector"]}, x,
          train=True, mutable=["batch_stats"])
      loss = jnp.mean(out["joints"])
      new_stats = dict(stats, detector=det_updates["batch_stats"])
      if with_mask:
        lines = render.render_skeleton(out["joints"][:half, 0, :, :2], size)
        body, phys_updates = physique.apply(
            {"params": p["physique"], "batch_stats": stats["physique"]},
            lines, train=True, mutable=["batch_stats"])
        loss += (jnp.mean(jnp.square(lines - masks)) +
                 jnp.mean(jnp.square(body - masks)))
        new_stats["physique"] = phys_updates["batch_stats"]
      return loss, new_stats

    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), stats, opt_state), loss

  step = jax.jit(step, donate_argnums=(0,))
  start = time.perf_counter()
  compiled = step.lower(state, x).compile()
  state, loss = compiled(state, x)
  jax.block_until_ready(loss)
  first_s = time.perf_counter() - start
  flops = cost_flops(compiled)
  start = time.perf_counter()
  with HostCost() as host:
    for _ in range(steps):
      state, loss = compiled(state, x)
    jax.block_until_ready(loss)
  per_step = (time.perf_counter() - start) / steps
  return {"impl": "xsup", "dtype": dtype, "depth_dim": model_config.depth_dim,
          "step_s": per_step, "first_step_s": first_s, "step_flops": flops,
          "achieved_tflops": flops / per_step / 1e12,
          **{f"{k}_per_step": v for k, v in host.per_call(steps).items()},
          "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
          "finite": bool(np.isfinite(float(loss)))}


def reference_numbers(repo: str, preset: str, images: np.ndarray, steps: int,
                      threads: int, depth_dim: int, with_mask: bool):
  """The same step of the authors' PyTorch modules."""
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(threads)
  sys.path.insert(0, repo)
  # pylint: disable=g-import-not-at-top
  from modules import util
  from modules.integral_base_modules import network
  from modules.keypoint_detector_integral_multi import KPDetector3DMulti
  from modules.physique_network import PhysiqueMaskGenerator
  # pylint: enable=g-import-not-at-top
  network.init_pose_net = lambda net, cfg: net  # Random weights, no download.
  spec = dict(PRESETS[preset])
  if spec.get("resnet_width", 64) != 64 or spec.get("head_filters",
                                                    256) != 256:
    raise ValueError(f"preset {preset!r} changes the ResNet width or head "
                     "filters, which the reference network does not offer")
  # The published S2 head (xsup's S2 config has the same defaults). The
  # reference integral weights the x marginal by arange(D), so it runs only
  # where D equals the heatmap width (input / 4).
  depth_dim = depth_dim or spec.get("depth_dim", 64)
  if depth_dim != images.shape[2] // 4:
    raise ValueError(f"the reference detector needs --depth_dim "
                     f"{images.shape[2] // 4} (input / 4) for {preset!r}, "
                     f"got {depth_dim}; give both implementations the same "
                     "--depth_dim")
  det = KPDetector3DMulti("resnet_multi", NUM_JOINTS, depth_dim,
                          spec.get("num_hypo", 3),
                          spec.get("neighbor_size", 15),
                          num_layers=spec["resnet_depth"])

  def single_process_batchnorm(module):
    for name, child in module.named_children():
      if isinstance(child, torch.nn.SyncBatchNorm):
        setattr(module, name, torch.nn.BatchNorm2d(child.num_features))
      else:
        single_process_batchnorm(child)

  physique = PhysiqueMaskGenerator([32, 64, 128])  # The S2 configs' layers.
  single_process_batchnorm(det)
  single_process_batchnorm(physique)
  det.train()
  physique.train()
  optimizer = torch.optim.Adam(list(det.parameters()) +
                               list(physique.parameters()), 1e-4)
  x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
  size, half = images.shape[1], len(images) // 2
  masks = torch.from_numpy(_masks(half, size))[:, None]
  # The 25 lines of the S2 configs (model.cal_links with all 17 bones and
  # the 8 extension lines): the 18-joint parents, then the extensions.
  parents = [0, 0, 1, 2, 0, 4, 5, 0, 17, 8, 9, 17, 11, 12, 17, 14, 15, 7]
  children = list(range(1, 18)) + [1, 4, 11, 14, 2, 5, 14, 11]
  parents = parents[1:] + [7, 7, 7, 7, 0, 0, 1, 4]

  def step():
    optimizer.zero_grad(set_to_none=True)
    joints, _ = det(x)
    loss = joints.mean()
    if with_mask:
      heat = util.draw_lines(joints[:half, 0, :, :2], size, parents,
                             children, 3e-3)
      lines = torch.max(heat, dim=1, keepdim=True)[0]
      body = physique(lines)
      loss = loss + (torch.mean(torch.square(lines - masks)) +
                     torch.mean(torch.square(body - masks)))
    loss.backward()
    optimizer.step()
    return loss.item()

  start = time.perf_counter()
  step()
  first_s = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(steps):
    loss = step()
  per_step = (time.perf_counter() - start) / steps
  return {"impl": "reference-pytorch", "threads": threads,
          "depth_dim": depth_dim, "step_s": per_step, "first_step_s": first_s,
          "finite": bool(np.isfinite(loss))}


def main(argv=None, restart: bool = False):
  """`restart`: first restart the process as the command line does
  (`xsup.host_memory`)."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--impl", default="xsup",
                      choices=["xsup", "reference"])
  parser.add_argument("--preset", action="append", choices=sorted(PRESETS),
                      help="repeatable; default r18_128")
  parser.add_argument("--part", default="detector+mask",
                      choices=["detector", "detector+mask"])
  parser.add_argument("--images", type=int, default=64,
                      help="images per step (S2 at batch 8 x 4 views: 64)")
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--dtype", default="float32",
                      choices=["float32", "bfloat16"])
  parser.add_argument("--depth_dim", type=int, default=0,
                      help="depth bins D (default: the preset's / S2's)")
  parser.add_argument("--reference_repo", default=None)
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  args = parser.parse_args(argv)
  if args.impl == "xsup" and restart:
    from xsup import host_memory  # pylint: disable=g-import-not-at-top
    host_memory.restart_with_huge_pages(sys.argv)  # As the command line.
  if args.impl == "reference" and not args.reference_repo:
    parser.error("--impl reference needs --reference_repo")
  rows = []
  for preset in args.preset or ["r18_128"]:
    size = PRESETS[preset]["image_size"]
    images = np.random.default_rng(0).random(
        (args.images, size, size, 3), dtype=np.float32)
    if args.impl == "xsup":
      row = xsup_numbers(preset, images, args.steps, args.dtype,
                         args.depth_dim, args.part == "detector+mask")
    else:
      row = reference_numbers(args.reference_repo, preset, images, args.steps,
                              args.threads, args.depth_dim,
                              args.part == "detector+mask")
    row = {"preset": preset, "part": args.part, "images": args.images,
           "images_per_s": args.images / row["step_s"], **row,
           "peak_rss_mb": _peak_rss_mb()}
    rows.append(row)
    print(json.dumps(row), flush=True)  # One JSON line per preset.
  return rows


if __name__ == "__main__":
  main(sys.argv[1:], restart=True)
