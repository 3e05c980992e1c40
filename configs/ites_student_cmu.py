r"""Student on CMU motion capture (BVH or ASF/AMC in the manual directory).

    python -m xsup.main --config configs/ites_student_cmu.py \
        --workdir /tmp/xsup/cmu_student \
        --config.dataset.manual_dir=/path/to/cmu \
        --config.teacher_checkpoint=/tmp/xsup/cmu_teacher

Each clip is a split (`clip_<id>`); the default trains on 131_01 and 131_02
and tests on 131_03 (the clips shipped with the developer set). Override with
`--config.dataset.train_split=clip_a+clip_b`. Variant `:tiny` for tests.
"""

from xsup import config_defaults


def get_config(arg: str = None):
  c = config_defaults.lifting("student")
  c.dataset.name = "cmu_mocap_lifting"
  c.dataset.config = "default"
  c.dataset.train_split = "clip_131_01+clip_131_02"
  c.dataset.eval_splits = ("clip_131_03",)
  c.batch_size = 128
  c.num_epochs = 40
  c.log_every_steps = 20
  c.optimizer.decay_every_epochs = 15

  if arg == "tiny":
    c.batch_size = 16
    c.total_steps = 2
    c.log_every_steps = 1
    c.model.hidden = 16
    c.model.num_blocks = 1
    c.teacher_model.width = 64
    c.teacher_model.num_layers = 2
  elif arg:
    raise ValueError(f"Unknown variant {arg!r}; known: tiny")
  return c
