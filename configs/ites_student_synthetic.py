r"""Equivariant student on the built-in synthetic lifting data (CPU, minutes).

Train the teacher first (configs/ites_teacher_synthetic.py), then:

    python -m xsup.main --config configs/ites_student_synthetic.py \
        --workdir /tmp/xsup/student \
        --config.teacher_checkpoint=/tmp/xsup/teacher

Variants: `:noisy`, `:tiny` (as the teacher's).
"""

from xsup import config_defaults


def get_config(arg: str = None):
  c = config_defaults.lifting("student")
  c.dataset.name = "synthetic_lifting"
  c.dataset.config = "default"
  c.batch_size = 128
  c.num_epochs = 4
  c.optimizer.learning_rate = 1e-3
  c.optimizer.decay_every_epochs = 2
  c.log_every_steps = 50
  if arg == "noisy":
    c.dataset.config = "noisy"
  elif arg == "tiny":
    c.dataset.config = "tiny"
    c.model.hidden = 16
    c.model.num_blocks = 1
    c.teacher_model.width = 64
    c.teacher_model.num_layers = 2
    c.batch_size = 16
    c.total_steps = 4
    c.log_every_steps = 2
  elif arg:
    raise ValueError(f"Unknown variant {arg!r}; known: noisy, tiny")
  return c
