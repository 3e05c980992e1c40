r"""Invariant teacher on the built-in synthetic lifting data (CPU, minutes).

    python -m xsup.main --config configs/ites_teacher_synthetic.py \
        --workdir /tmp/xsup/teacher

Variants: `:noisy` (2D noise like a detector's), `:tiny` (seconds; tests).
"""

from xsup import config_defaults


def get_config(arg: str = None):
  c = config_defaults.lifting("teacher")
  c.dataset.name = "synthetic_lifting"
  c.dataset.config = "default"
  c.batch_size = 128
  c.num_epochs = 6
  c.loss.align_root_epochs = 2
  c.optimizer.learning_rate = 1e-3
  c.optimizer.decay_every_epochs = 3
  c.log_every_steps = 50
  if arg == "noisy":
    c.dataset.config = "noisy"
  elif arg == "tiny":
    c.dataset.config = "tiny"
    c.model.width = 64
    c.model.num_layers = 2
    c.batch_size = 16
    c.total_steps = 4
    c.log_every_steps = 2
  elif arg:
    raise ValueError(f"Unknown variant {arg!r}; known: noisy, tiny")
  return c
