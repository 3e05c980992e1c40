r"""Saves a PNG grid of `synthetic_multiview` examples to look at.

Each row is one example; each view shows the patch with the H36M-18 skeleton
drawn from `joints_2d_patch`, then the person mask. By default the examples
are rendered directly (no TFDS preparation); with `--data_dir` they are read
from a prepared dataset.

Usage:
  python scripts/show_synthetic_multiview.py --out /tmp/synthetic.png
  python scripts/show_synthetic_multiview.py --config 64 \
      --data_dir ~/tensorflow_datasets --split train --num 4
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Dict, List, Sequence

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

from xsup import skeleton
from xsup.data.builders import synthetic_multiview as sm


def rendered_examples(config: sm.SyntheticMultiviewConfig, split: str,
                      num: int) -> List[Dict[str, object]]:
  """The first `num` examples of `split`, rendered in-process."""
  domain = sm.domain_of_split(split)
  joints, actions = sm.split_poses(config, domain, split, num)
  return [sm.make_example(config, domain, split, i, joints[i], actions[i])
          for i in range(num)]


def stored_examples(config_name: str, data_dir: str, split: str, num: int
                    ) -> List[Dict[str, object]]:
  """The first `num` examples of a prepared dataset (prepares it if absent)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = sm.Builder(config=config_name, data_dir=data_dir)
  builder.download_and_prepare()
  ds = builder.as_dataset(split=f"{split}[:{num}]", shuffle_files=False)
  return list(tfds.as_numpy(ds))


def _text(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


def draw_grid(examples: Sequence[Dict[str, object]], titles: Sequence[str],
              out: str) -> None:
  """Writes the grid of `examples` (one row each) to the PNG `out`."""
  num_views = examples[0]["image"].shape[0]
  bones = skeleton.H36M18.bones
  left = set(skeleton.H36M18.left_joints)
  fig, axes = plt.subplots(len(examples), 2 * num_views,
                           figsize=(2.2 * 2 * num_views, 2.4 * len(examples)),
                           squeeze=False)
  for row, (ex, title) in enumerate(zip(examples, titles)):
    for v in range(num_views):
      ax_img, ax_mask = axes[row, 2 * v], axes[row, 2 * v + 1]
      ax_img.imshow(ex["image"][v])
      xy = ex["joints_2d_patch"][v]
      for child, parent in bones:
        color = "tab:red" if child in left else "tab:cyan"
        ax_img.plot(xy[[child, parent], 0], xy[[child, parent], 1], "-",
                    color=color, linewidth=1.2)
      ax_img.plot(xy[:, 0], xy[:, 1], "w.", markersize=2.5)
      ax_mask.imshow(ex["mask"][v][..., 0], cmap="gray", vmin=0, vmax=255)
      if v == 0:
        ax_img.set_title(title, fontsize=7, loc="left")
      for ax in (ax_img, ax_mask):
        ax.set_xticks([])
        ax.set_yticks([])
  fig.tight_layout()
  fig.savefig(out, dpi=110)
  plt.close(fig)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="128",
                      help="builder config: 64, 128, 256 or tiny")
  parser.add_argument("--split", default="both",
                      help="synthetic, train, test, or both (synthetic and "
                           "train)")
  parser.add_argument("--num", type=int, default=3,
                      help="examples per split")
  parser.add_argument("--data_dir", default=None,
                      help="read a prepared TFDS dataset from here instead of "
                           "rendering")
  parser.add_argument("--seed", type=int, default=None,
                      help="override the config seed (rendering only)")
  parser.add_argument("--out", default="synthetic_multiview.png")
  args = parser.parse_args(argv)

  configs = {c.name: c for c in sm.BUILDER_CONFIGS}
  if args.config not in configs:
    raise ValueError(f"--config must be one of {sorted(configs)}, got "
                     f"{args.config!r}")
  config = configs[args.config]
  if args.seed is not None:
    config = dataclasses.replace(config, seed=args.seed)
  splits = ("synthetic", "train") if args.split == "both" else (args.split,)
  examples, titles = [], []
  for split in splits:
    if args.data_dir:
      found = stored_examples(args.config, args.data_dir, split, args.num)
    else:
      found = rendered_examples(config, split, args.num)
    for ex in found:
      examples.append(ex)
      titles.append(f"{split} #{int(ex['frame'])}: {_text(ex['subject'])}, "
                    f"{_text(ex['action'])}")
  draw_grid(examples, titles, args.out)
  print(f"Wrote {len(examples)} examples to {args.out}")


if __name__ == "__main__":
  main()
