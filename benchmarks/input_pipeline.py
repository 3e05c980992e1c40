r"""Input pipeline of the image method on a generated Human3.6M-format tree.

1. Writes a Human3.6M tree in the real preprocessed layout (`hm36/annot/
   <sequence>/matlab_meta.txt`, full-frame JPEGs under `hm36/images/`, PNG
   masks under `sam_masks/h36m/`; `xsup.data.formats.h36m_meta`) with
   `--examples` training frames of 4 cameras over the 110 training
   sequences (subjects 1, 5, 6, 7, 8; the actions the `train` split keeps;
   both subactions). Frames are noise (so their 256 px patches stay large
   once JPEG-encoded) hard-linked from a small pool; every frame has its
   own pose, so every patch is a different crop.
2. Prepares it with the `h36m_images` builder at `patch256` (ArrayRecord),
   reporting the time and the size on disk.
3. Runs the training input of the published S1 config
   (`configs/h36m_multi_sur_s1.py`: batch 32 x 4 views at 256 px) for one
   epoch with `--workers` grain workers. The labelled stream reads the same
   prepared split (its camera joints serve as labels), so every step
   decodes 32 x 4 target patches, their masks and 32 x 4 labelled patches.
   Reports examples/s, detector images/s and the peak RSS of the training
   process and of all its processes together, sampled every 0.2 s.
4. With `--step_batch B > 0`, times `--step_steps` S1 steps of the
   published model (ResNet-50, 256 px) at batch B on this machine (the
   rate the pipeline must beat), and prints both rates side by side.

    python benchmarks/input_pipeline.py --root /tmp/xsup_bench \
        --examples 10000 [--workers 1] [--step_batch 2]

One JSON line per measurement.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from xsup import skeleton  # pylint: disable=g-import-not-at-top,wrong-import-position
from xsup.data.formats import h36m_meta  # pylint: disable=g-import-not-at-top,wrong-import-position

FRAME = 1000  # Frame side, pixels (Human3.6M frames are 1000 x 1002).
FOCAL = (1145.0, 1144.0)
CENTER = (500.0, 500.0)
POOL = 32  # Files each frame and mask links to (a file takes < 65000 links).
TRAIN_ACTIONS = tuple(a for a in h36m_meta.ACTIONS if a not in (4, 6, 9, 11))
# 0-based indices of the 17 selected joints among the 32 mocap joints.
_H36M17_IDS = tuple(i for (i,) in skeleton._H36M17_FROM_H36M32)  # pylint: disable=protected-access


def _look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
  """World -> camera rotation of a level camera at `position` looking at
  `target` (world Z up; camera x right, y down, z forward)."""
  forward = target - position
  forward /= np.linalg.norm(forward)
  right = np.cross(forward, [0.0, 0.0, 1.0])
  right /= np.linalg.norm(right)
  down = np.cross(forward, right)
  return np.stack([right, down, forward])


def _write_sequence(root, subject, action, subaction, num_frames, rng):
  pelvis = np.array([0.0, 0.0, 950.0])
  poses = pelvis + rng.uniform(-400, 400, (num_frames, 32, 3))
  poses[:, 0] = pelvis + rng.uniform(-200, 200, (num_frames, 3))
  names = []
  for cam in h36m_meta.CAMERAS:
    angle = np.pi / 2 * cam + 0.3
    position = pelvis + 4500.0 * np.array([np.cos(angle), np.sin(angle), 0.0])
    rot = _look_at(position, pelvis)
    name = h36m_meta.sequence_name(subject, action, subaction, cam)
    lines = [f"{num_frames}", f"size {FRAME} {FRAME}",
             "R " + " ".join(f"{v:.12f}" for v in rot.T.ravel()),
             "T " + " ".join(f"{v:.6f}" for v in position),
             "f " + " ".join(map(str, FOCAL)),
             "c " + " ".join(map(str, CENTER)),
             "k 0 0 0", "p 0 0",
             "joints " + " ".join(str(i + 1) for i in _H36M17_IDS)]
    lines += [f"{n + 1} " + " ".join(f"{v:.3f}" for v in poses[n].ravel())
              for n in range(num_frames)]
    path = os.path.join(root, "hm36", "annot", name, "matlab_meta.txt")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
      f.write("\n".join(lines) + "\n")
    names.append(name)
  return names


def write_tree(root: str, examples: int, test_frames: int = 2,
               seed: int = 0) -> int:
  """Writes the tree; returns the number of training frames (examples)."""
  rng = np.random.default_rng(seed)
  pool = os.path.join(root, "pool")
  os.makedirs(pool, exist_ok=True)
  for k in range(POOL):
    noise = rng.integers(0, 256, (FRAME, FRAME, 3), dtype=np.uint8)
    Image.fromarray(noise).save(os.path.join(pool, f"frame{k}.jpg"),
                                quality=90)
  yy, xx = np.mgrid[0:FRAME, 0:FRAME]
  ellipse = (((xx - FRAME / 2) / 120) ** 2 + ((yy - FRAME / 2) / 300) ** 2
             < 1)
  for k in range(POOL):
    Image.fromarray((ellipse * 255).astype(np.uint8)).save(
        os.path.join(pool, f"mask{k}.png"))
  sequences = [(s, a, sub) for s in h36m_meta.TRAIN_SUBJECTS
               for a in TRAIN_ACTIONS for sub in h36m_meta.SUBACTIONS]
  per_sequence = -(-examples // len(sequences))
  jobs = [(s, a, sub, per_sequence) for s, a, sub in sequences]
  jobs += [(9, a, sub, test_frames) for a in h36m_meta.ACTIONS
           for sub in h36m_meta.SUBACTIONS]
  count = 0
  for subject, action, subaction, frames in jobs:
    names = _write_sequence(root, subject, action, subaction, frames, rng)
    for name in names:
      image_dir = os.path.join(root, "hm36", "images", name)
      mask_dir = os.path.join(root, "sam_masks", "h36m", name)
      os.makedirs(image_dir, exist_ok=True)
      os.makedirs(mask_dir, exist_ok=True)
      for n in range(frames):
        os.link(os.path.join(pool, f"frame{rng.integers(POOL)}.jpg"),
                os.path.join(image_dir, f"{name}_{n + 1:06d}.jpg"))
        os.link(os.path.join(pool, f"mask{rng.integers(POOL)}.png"),
                os.path.join(mask_dir, f"{name}_{n + 1:06d}.png"))
    if subject != 9:
      count += frames
  return count


def _du_bytes(path: str) -> int:
  out = subprocess.run(["du", "-sb", path], capture_output=True, text=True,
                       check=True).stdout
  return int(out.split()[0])


class RssSampler:
  """Peak RSS of this process and of it plus its children (bytes)."""

  def __init__(self, period_s: float = 0.2):
    import psutil  # pylint: disable=g-import-not-at-top
    self._proc = psutil.Process()
    self.peak_self = self.peak_total = 0
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, args=(period_s,),
                                    daemon=True)

  def _sample(self):
    import psutil  # pylint: disable=g-import-not-at-top
    own = self._proc.memory_info().rss
    total = own
    for child in self._proc.children(recursive=True):
      try:
        total += child.memory_info().rss
      except psutil.Error:
        pass
    self.peak_self = max(self.peak_self, own)
    self.peak_total = max(self.peak_total, total)

  def _run(self, period_s):
    while not self._stop.is_set():
      self._sample()
      time.sleep(period_s)

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()
    self._sample()


def task_config(args, data_dir: str, manual_dir: str):
  """The published S1 config on the generated tree."""
  sys.path.insert(0, os.path.join(REPO, "tests"))
  from repo_configs import load_config  # pylint: disable=g-import-not-at-top
  config = load_config("h36m_multi_sur_s1.py")
  config.dataset.data_dir = data_dir
  config.dataset.manual_dir = manual_dir
  for key, value in dict(test_subjects=(9,), train_frames=0,
                         test_frames=args.test_frames).items():
    config.dataset.builder_overrides[key] = value
  config.synthetic = config.dataset.copy_and_resolve_references()
  config.synthetic.split = "train"
  config.synthetic.remove_background = True
  config.data_workers = args.workers
  config.num_devices = 1
  return config


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--root", required=True,
                      help="Folder for the tree and the prepared data.")
  parser.add_argument("--examples", type=int, default=10000,
                      help="Training frames (4 views each) to generate.")
  parser.add_argument("--test_frames", type=int, default=2)
  parser.add_argument("--workers", type=int, default=-1,
                      help="Grain workers (-1: automatic).")
  parser.add_argument("--max_steps", type=int, default=0,
                      help="Stop the epoch early after this many steps.")
  parser.add_argument("--step_batch", type=int, default=0,
                      help="Also time S1 steps at this batch (0: skip).")
  parser.add_argument("--step_steps", type=int, default=3)
  args = parser.parse_args()

  manual = os.path.join(args.root, "manual")
  data_dir = os.path.join(args.root, "tfds")
  if not os.path.isdir(os.path.join(manual, "hm36")):
    start = time.time()
    frames = write_tree(manual, args.examples, args.test_frames)
    print(json.dumps({"what": "tree", "train_examples": frames,
                      "seconds": round(time.time() - start, 1)}),
          flush=True)

  from xsup.data import pipeline  # pylint: disable=g-import-not-at-top
  from xsup.train import xsup as xsup_train  # pylint: disable=g-import-not-at-top
  config = task_config(args, data_dir, manual)
  start = time.time()
  task = xsup_train.XSupTask(config)
  source = task.target_source  # Prepares on first use.
  prepared = os.fspath(os.path.dirname(source.data_dir))
  print(json.dumps({"what": "prepare", "examples": len(source),
                    "seconds": round(time.time() - start, 1),
                    "prepared_gb": round(_du_bytes(prepared) / 1e9, 2),
                    "peak_rss_so_far_gb": round(resource.getrusage(
                        resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}),
        flush=True)

  steps = task.steps_per_epoch
  if args.max_steps:
    steps = min(steps, args.max_steps)
  batches = task.train_batches(0)
  workers = batches.num_workers
  with RssSampler() as rss:
    next(batches)  # Start-up (workers, first batch) is not timed.
    start = time.time()
    for _ in range(steps - 1):
      batch = next(batches)
    seconds = time.time() - start
    batches.close()
  per_step_images = (batch["target_image"].shape[0] +
                     batch["synthetic_image"].shape[0])
  pipeline_rate = (steps - 1) * config.batch_size / seconds
  print(json.dumps({
      "what": "input_pipeline", "workers": workers, "steps": steps - 1,
      "global_batch": config.batch_size, "views": task.num_views,
      "examples_per_s": round(pipeline_rate, 2),
      "images_per_s": round((steps - 1) * per_step_images / seconds, 1),
      "peak_rss_gb": round(rss.peak_self / 2**30, 2),
      "peak_rss_all_processes_gb": round(rss.peak_total / 2**30, 2),
      "cpus": os.cpu_count()}), flush=True)
  del pipeline

  if args.step_batch:
    import jax  # pylint: disable=g-import-not-at-top
    from xsup.data import pipeline as pl  # pylint: disable=g-import-not-at-top
    from xsup.train import state as state_lib  # pylint: disable=g-import-not-at-top
    config.batch_size = args.step_batch
    config.data_workers = 0
    step_task = xsup_train.XSupTask(config)
    state, _, shardings = state_lib.create_sharded(
        step_task.init_state, jax.random.PRNGKey(0), step_task.mesh)
    step = jax.jit(lambda s, b, k, e: step_task.train_step(s, b, k, **e),
                   out_shardings=(shardings, None), donate_argnums=(0,))
    extras = step_task.step_extras()
    key = jax.random.PRNGKey(1)
    times = []
    for i in range(args.step_steps + 1):
      batch = pl.shard_batch(step_task.batch_at(i), step_task.mesh)
      start = time.time()
      state, metrics = step(state, batch, key, extras)
      jax.block_until_ready(metrics)
      times.append(time.time() - start)
    step_s = float(np.median(times[1:]))
    step_rate = args.step_batch / step_s
    print(json.dumps({
        "what": "s1_step", "model": "resnet50 256px (published)",
        "batch": args.step_batch, "seconds_per_step": round(step_s, 2),
        "examples_per_s": round(step_rate, 3),
        "pipeline_over_step": round(pipeline_rate / step_rate, 1),
        "peak_rss_gb": round(resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}), flush=True)


if __name__ == "__main__":
  main()
