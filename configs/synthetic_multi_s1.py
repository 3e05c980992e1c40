r"""X-as-Supervision stage S1 on the built-in synthetic multi-view data.

    python -m xsup.main --config configs/synthetic_multi_s1.py \
        --workdir /tmp/xsup/synthetic_s1

Synthetic supervision only: the detector learns from the labelled
`synthetic` split of `synthetic_multiview` (random-looking people, known 3D)
and is evaluated on the `test` split of the studio-like target domain.
ResNet-18 at 64x64, batch 4 (16 images), 300 steps: minutes on a 2-core CPU.
The first run renders a reduced `64` dataset (2000 synthetic, 2000 target
train and 200 test examples, about two minutes). Continue with
`configs/synthetic_multi_s2.py`.

Variants: `:full` (the builder's whole `64` config, 8000/8000/1600
examples, and 20x more steps), `:tiny` (the `tiny` builder config, two
steps; tests).
"""

from xsup import config_defaults


# Reduced size of the default run's dataset (the builder's `64` config has
# 8000 / 8000 / 1600 examples).
REDUCED = dict(num_synthetic=2000, num_train=2000, num_test=200)


def synthetic_multiview(c, stage: str, arg):
  """Shared settings of the synthetic S1/S2 configs."""
  c.dataset.name = "synthetic_multiview"
  c.dataset.config = "64"
  c.dataset.train_split = "train"
  c.dataset.eval_splits = ("test",)
  # Typical metric width of a target crop (they frame the projected joints
  # with a 1.35 margin, so the width varies per sample).
  c.dataset.rect_3d_mm = 2200.0
  c.synthetic.name = "synthetic_multiview"
  c.synthetic.config = "64"
  c.synthetic.split = "synthetic"
  c.model.resnet_depth = 18
  c.model.depth_dim = 32
  c.model.neighbor_size = 7
  c.model.head_filters = 128
  c.model.physique_features = (16, 32, 64)
  c.batch_size = 4
  c.eval_batch_size = 32
  c.log_every_steps = 20
  c.loss.synthetic = 3.0
  if stage == "s1":
    c.optimizer.generator_lr = 1e-3
    c.optimizer.discriminator_lr = 1e-3
    c.total_steps = 300
    c.optimizer.milestones_epochs = (0.5,)  # x0.1 after 250 steps
  else:
    c.optimizer.generator_lr = 2e-4
    c.optimizer.discriminator_lr = 2e-4
    c.total_steps = 100
    c.optimizer.milestones_epochs = (40,)
  c.checkpoint_every_steps = 100
  c.eval_every_steps = 0  # 0: once per epoch and at the end.
  if arg in (None, ""):
    for part in (c.dataset, c.synthetic):
      for k, v in REDUCED.items():
        part.builder_overrides[k] = v
  if arg == "full":
    c.total_steps *= 20
    if stage == "s1":
      c.optimizer.milestones_epochs = (2.5,)  # x0.1 after 5000 steps
  elif arg == "tiny":
    c.dataset.config = "tiny"
    c.synthetic.config = "tiny"
    c.batch_size = 2
    c.eval_batch_size = 8
    c.total_steps = 2
    c.log_every_steps = 1
    c.checkpoint_every_steps = 2
    c.eval_every_steps = 2
    c.num_devices = 1
  elif arg:
    raise ValueError(f"Unknown variant {arg!r}; known: full, tiny")
  return c


def get_config(arg: str = None):
  return synthetic_multiview(config_defaults.xsup("s1"), "s1", arg)
