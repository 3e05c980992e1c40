"""Shared defaults of the configuration files in `configs/`.

Each file in `configs/` starts from one of these bases and overrides what
its dataset and stage need, so every knob is visible in one place.
"""

import ml_collections


def lifting(stage: str) -> ml_collections.ConfigDict:
  """Paper settings of the lifting method (SPEC.md section 2)."""
  if stage not in ("teacher", "student"):
    raise ValueError(f"stage must be 'teacher' or 'student', got {stage!r}")
  c = ml_collections.ConfigDict()
  c.trainer = "lifting"
  c.stage = stage
  c.seed = 0

  c.dataset = ml_collections.ConfigDict()
  c.dataset.name = "synthetic_lifting"
  c.dataset.config = "default"
  c.dataset.data_dir = ml_collections.config_dict.placeholder(str)
  c.dataset.manual_dir = ml_collections.config_dict.placeholder(str)
  c.dataset.train_split = "train"
  c.dataset.eval_splits = ("test",)

  teacher = ml_collections.ConfigDict()
  teacher.width = 1024
  teacher.num_layers = 6
  teacher.dict_size = 12
  student = ml_collections.ConfigDict()
  student.hidden = 128
  student.num_blocks = 4
  student.reference_pooling = False
  c.model = teacher if stage == "teacher" else student
  # Architecture of the frozen teacher (student stage only).
  c.teacher_model = teacher.copy_and_resolve_references()
  c.teacher_checkpoint = ml_collections.config_dict.placeholder(str)

  c.loss = ml_collections.ConfigDict()
  c.loss.cycle_samples = 4
  if stage == "teacher":
    c.loss.reprojection_weight = 5.0
    c.loss.align_root_epochs = 15
    c.loss.reference_bn_updates = False
  else:
    c.loss.distillation_weight = 5.0

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 1e-3
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 5e-4
  c.optimizer.decay_every_epochs = 15
  c.optimizer.decay_factor = 0.5

  c.batch_size = 128
  c.num_epochs = 50 if stage == "teacher" else 40
  c.total_steps = 0  # > 0 overrides num_epochs.
  c.log_every_steps = 100
  c.checkpoint_every_steps = 0  # 0: once per epoch.
  c.eval_every_steps = 0  # 0: once per epoch.
  c.keep_checkpoints = 3
  c.num_devices = 0  # 0: all devices.
  c.init_checkpoint = ml_collections.config_dict.placeholder(str)
  return c
