"""Shared defaults of the configuration files in `configs/`.

Each file in `configs/` starts from one of these bases and overrides what
its dataset and stage need, so every knob is visible in one place.
"""

import ml_collections


def _compilation_cache(c: ml_collections.ConfigDict) -> None:
  """JAX's persistent compilation cache (`loop.compilation_cache`): a
  resumed or repeated run does not compile its programs again."""
  c.compilation_cache = True
  # Default <workdir>/compilation_cache.
  c.compilation_cache_dir = ml_collections.config_dict.placeholder(str)


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
  teacher.init_std = 0.01  # std of the dense kernels' normal init
  student = ml_collections.ConfigDict()
  student.hidden = 128
  student.num_blocks = 4
  student.reference_pooling = False
  # True: the published SemGraphConv init (fans over the stacked [2, in, out]
  # kernel, ~8x smaller weights).
  student.reference_init = False
  student.dropout = ml_collections.config_dict.placeholder(float)
  # K depth hypotheses per input; 1 is the published student (see
  # `hypothesis_settings` for K > 1).
  student.num_hypotheses = 1
  # Compute dtype of the trained network ("float32" or "bfloat16"; the
  # parameters stay float32, see xsup/models/precision.py). The frozen
  # teacher of the student stage runs in float32.
  teacher.dtype = student.dtype = "float32"
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
    # Refinements of the distillation target (LiftingTask.teacher_target):
    # per-pose anatomical depth orientation, left-right mirror averaging.
    c.loss.orient_teacher_depth = False
    c.loss.mirror_average_teacher = False
    # K > 1: "winner_takes_all" distils the target into its closest
    # hypothesis (with wta_mirror_target also the target's depth mirror;
    # before wta_ordered_steps, fixed roles); "fixed_roles": hypothesis 0
    # learns the anatomically oriented target, 1 its depth mirror.
    c.loss.hypothesis_distillation = "winner_takes_all"
    c.loss.wta_mirror_target = False
    c.loss.wta_ordered_steps = 0
    c.hypotheses = hypothesis_settings()

  # Evaluation: the scale of "calibrate by scale" behind `mpjpe` and
  # `mpjpe_flip` ("rotation": xsup's proper-rotation Procrustes scale;
  # "reflection": the published evaluation's, reflections allowed). Both
  # are always reported too, as `mpjpe[_flip]_scale_<protocol>`.
  c.eval = ml_collections.ConfigDict()
  c.eval.scale_protocol = "rotation"

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 1e-3
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 5e-4
  c.optimizer.decay_every_epochs = 15
  c.optimizer.decay_factor = 0.5
  c.optimizer.schedule = "step"  # or "cosine" (see train/lifting.py)

  c.batch_size = 128
  c.num_epochs = 50 if stage == "teacher" else 40
  c.total_steps = 0  # > 0 overrides num_epochs.
  c.log_every_steps = 100
  c.checkpoint_every_steps = 0  # 0: once per epoch.
  c.eval_every_steps = 0  # 0: once per epoch.
  c.keep_checkpoints = 3
  c.num_devices = 0  # 0: all devices.
  c.init_checkpoint = ml_collections.config_dict.placeholder(str)
  _input_pipeline(c)
  _compilation_cache(c)
  return c


def hypothesis_settings() -> ml_collections.ConfigDict:
  """How a multi-hypothesis student (model.num_hypotheses > 1) picks its
  confident hypothesis without ground truth, and its optional pose prior
  (`xsup.train.hypothesis_choice`, `xsup.models.pose_prior`)."""
  h = ml_collections.ConfigDict()
  # "chirality", "discriminator" (needs prior_poses) or "temporal" (needs
  # frames of sequences).
  h.choice = "chirality"
  # Per-frame score and weight of the temporal choice; segments break
  # where consecutive frames are more than temporal_max_gap apart.
  h.temporal_unary = "chirality"
  h.temporal_weight = 1.0
  h.temporal_max_gap = 1
  # Real poses of the learned pose prior: "" (none), "procedural" (the
  # synthetic pose sampler) or "teacher" (the teacher's oriented outputs).
  h.prior_poses = ""
  h.prior_weight = 1.0
  h.prior_bank_size = 20000
  h.prior_bank_seed = 12345
  h.prior = ml_collections.ConfigDict(dict(
      discriminator="res_sage_gcn_decouple", features=32, num_layers=1,
      use_pe=True, head_dim=64, dropout=0.0))
  return h


def _input_pipeline(c: ml_collections.ConfigDict) -> None:
  """Input pipeline settings (`xsup.data.pipeline`)."""
  # Grain worker processes that read, decode and augment the training
  # batches; -1: automatic (none for in-memory data such as the lifting
  # sets, else half the CPUs, 1 to 8).
  c.data_workers = -1
  c.data_prefetch = 2  # Batches read ahead (per worker).


def xsup(stage: str) -> ml_collections.ConfigDict:
  """Paper settings of X-as-Supervision (SPEC.md section 1), Human3.6M S1/S2.

  Stage `s1` trains with synthetic supervision only; `s2` adds the mask,
  physique, symmetry and adversarial losses and is started from an S1 run
  (`--mode finetune --config.init_checkpoint=<s1 workdir>`).
  """
  if stage not in ("s1", "s2"):
    raise ValueError(f"stage must be 's1' or 's2', got {stage!r}")
  placeholder = ml_collections.config_dict.placeholder
  c = ml_collections.ConfigDict()
  c.trainer = "xsup"
  c.stage = stage
  c.seed = 0

  # Target domain: images + person masks for training; 3D for evaluation.
  c.dataset = ml_collections.ConfigDict()
  c.dataset.name = "h36m_images"
  c.dataset.config = "patch256"
  c.dataset.builder_overrides = ml_collections.ConfigDict()
  c.dataset.data_dir = placeholder(str)
  c.dataset.manual_dir = placeholder(str)
  c.dataset.train_split = "train"
  c.dataset.eval_splits = ("test",)
  # Nominal metric width (mm) of a target patch at the pelvis depth, used by
  # the symmetry and adversarial losses.
  c.dataset.rect_3d_mm = 2000.0
  c.dataset.remove_background = True
  # Extra evaluation protocol: "h36m" (per-action tables) or "mpi_inf_3dhp"
  # (PCK / AUC on the 3DHP test joints).
  c.dataset.eval_protocol = "h36m"

  # Labelled synthetic-supervision domain.
  c.synthetic = ml_collections.ConfigDict()
  c.synthetic.name = "surreal_pseudo"
  c.synthetic.config = "surreal_256"
  c.synthetic.builder_overrides = ml_collections.ConfigDict()
  c.synthetic.data_dir = placeholder(str)
  c.synthetic.manual_dir = placeholder(str)
  c.synthetic.split = "train"
  c.synthetic.rect_3d_mm = 2000.0  # Patch width when there is no camera.
  c.synthetic.remove_background = True
  c.synthetic.batch_size = 0  # 0: batch_size * target views / its views.

  c.model = ml_collections.ConfigDict()
  c.model.resnet_depth = 50
  c.model.resnet_width = 64  # Stem width; 64 is the published ResNet.
  c.model.depth_dim = 64
  c.model.num_hypo = 3
  c.model.neighbor_size = 15
  c.model.head_filters = 256
  c.model.head_layers = 3
  c.model.dtype = "float32"
  c.model.pretrained_backbone = placeholder(str)  # torchvision .npz
  c.model.physique_features = (32, 64, 128)
  c.model.discriminator = "res_sage_gcn_decouple"
  c.model.discriminator_kwargs = ml_collections.ConfigDict(dict(
      input_dim=128, hidden_dim=128, output_dim=128, num_layers=2,
      use_pe=True))

  c.render = ml_collections.ConfigDict()
  c.render.body_width = 3.0
  c.render.extension_links = True
  c.render.arm_width_scale = 0.5

  c.loss = ml_collections.ConfigDict()
  s2 = stage == "s2"
  c.loss.synthetic = 3.0
  c.loss.mask = 0.02 if s2 else 0.0
  c.loss.physique = 0.02 if s2 else 0.0
  c.loss.symmetry = 1.0 if s2 else 0.0  # Scales the two weights below.
  c.loss.symmetry_bone = 0.1
  c.loss.symmetry_keypoint = 0.1
  c.loss.discriminator = 0.5 if s2 else 0.0
  c.loss.generator = 0.5 if s2 else 0.0
  c.loss.mask_use_clip = True
  c.loss.mask_reference_clip = False
  c.loss.symmetry_reference_pairs = False
  # False reproduces the published detached generator loss.
  c.loss.generator_reaches_detector = True

  # Real poses of the adversarial prior (procedural, body-model free).
  c.prior = ml_collections.ConfigDict()
  c.prior.pitch_range_deg = (0.0, 15.0)
  c.prior.rotation_deg = 0.0  # > 0: random vertical rotation (45 published).

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.generator_lr = 1e-4 if s2 else 2e-4
  c.optimizer.discriminator_lr = 1e-4 if s2 else 2e-4
  c.optimizer.b1 = 0.5
  c.optimizer.b2 = 0.999
  c.optimizer.eps = 1e-8  # Adam's denominator offset.
  c.optimizer.milestones_epochs = (40,)
  c.optimizer.decay = 0.1

  c.batch_size = 32
  c.num_epochs = 15 if s2 else 50
  c.total_steps = 0  # > 0 overrides num_epochs.
  c.eval_batch_size = 64
  c.eval_swap_left_right = True
  c.log_every_steps = 100
  c.checkpoint_every_steps = 0  # 0: once per epoch.
  c.eval_every_steps = 0  # 0: once per epoch.
  c.image_every_steps = 500  # TensorBoard figures; 0: never.
  c.keep_checkpoints = 3
  c.num_devices = 0  # 0: all devices.
  c.init_checkpoint = placeholder(str)
  _input_pipeline(c)
  _compilation_cache(c)
  return c


def shrink_lifting(c: ml_collections.ConfigDict, batch: int, steps: int,
                   log_every: int, teacher_width: int = 64,
                   teacher_layers: int = 2) -> None:
  """Tiny networks and a few steps, for smoke tests: the teacher (trained or
  frozen) `teacher_width` wide with `teacher_layers` layers, a 16-wide
  1-block student."""
  if c.stage == "teacher":
    c.model.width = teacher_width
    c.model.num_layers = teacher_layers
  else:
    c.model.hidden = 16
    c.model.num_blocks = 1
  c.teacher_model.width = teacher_width
  c.teacher_model.num_layers = teacher_layers
  c.batch_size = batch
  c.total_steps = steps
  c.log_every_steps = log_every


def _small_student(c: ml_collections.ConfigDict) -> None:
  """Half the paper's student width and depth (64 wide, 2 blocks): a quarter
  of the cost per step, so the minute-scale runs can afford more steps."""
  c.model.hidden = 64
  c.model.num_blocks = 2


def _minute_schedule(c: ml_collections.ConfigDict, learning_rate: float,
                     schedule: str = "cosine") -> None:
  """Adam without weight decay: runs of minutes instead of the paper's days.

  With the paper's SGD (lr 1e-3) a few thousand steps barely move the
  networks. The student needs the cosine decay to 0, which lets its
  BatchNorm running statistics settle (with a constant rate its eval-mode
  errors stayed 15-20 mm above the train-mode ones); the synthetic teacher
  did better with the paper's step decay (test P-MPJPE 75.8 vs 88.4 mm).
  """
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = learning_rate
  c.optimizer.weight_decay = 0.0
  c.optimizer.schedule = schedule


def lifting_synthetic(stage: str, variant: str = None
                      ) -> ml_collections.ConfigDict:
  """The built-in synthetic lifting data; variants `noisy`, `tiny`."""
  c = lifting(stage)
  c.dataset.name = "synthetic_lifting"
  c.dataset.config = "default"
  c.log_every_steps = 50
  if stage == "teacher":
    c.num_epochs = 4
    # Root-align the cycle's canonical shapes for the whole short run: the
    # test error rose from 89 to 117 mm once alignment stopped (epochs 3-4).
    c.loss.align_root_epochs = c.num_epochs
    _minute_schedule(c, learning_rate=1e-3, schedule="step")
    c.optimizer.decay_every_epochs = 3
  else:
    # The student needs 12 epochs (4500 steps) to fit the teacher (the
    # paper's 128-wide, 4-block one reached 80.1 mm after 750 steps; the
    # small one 75.4 after 3000 and 74.6 after 4500).
    _small_student(c)
    c.num_epochs = 12
    c.loss.mirror_average_teacher = True
    _minute_schedule(c, learning_rate=2e-3)
  if variant == "noisy":
    c.dataset.config = "noisy"
  elif variant == "tiny":
    c.dataset.config = "tiny"
    shrink_lifting(c, batch=16, steps=4, log_every=2)
  elif variant:
    raise ValueError(f"Unknown variant {variant!r}; known: noisy, tiny")
  return c


H36M_KEYPOINTS = ("gt", "cpn_ft_h36m_dbb")


def lifting_h36m(stage: str, keypoints: str = "gt"
                 ) -> ml_collections.ConfigDict:
  """Human3.6M from VideoPose3D files with the paper's schedule."""
  if keypoints not in H36M_KEYPOINTS:
    raise ValueError(f"Unknown keypoints {keypoints!r}; known: "
                     f"{H36M_KEYPOINTS}")
  c = lifting(stage)
  c.dataset.name = "h36m_lifting"
  c.dataset.config = keypoints
  # Other motion in VideoPose3D's format (xsup/data/builders/h36m_lifting.py):
  # a JSON cameras file for subjects without published cameras (relative:
  # inside manual_dir) and the subjects of each split (None: S1, S5-8 / S9,
  # S11).
  placeholder = ml_collections.config_dict.placeholder
  c.dataset.builder_overrides = ml_collections.ConfigDict({
      "cameras_file": placeholder(str),
      "train_subjects": placeholder(tuple),
      "test_subjects": placeholder(tuple),
  })
  c.dataset.train_split = "train"
  c.dataset.eval_splits = ("test",)
  c.log_every_steps = 500
  return c


def lifting_cmu(stage: str, variant: str = None) -> ml_collections.ConfigDict:
  """CMU motion capture clips, one split per clip; variant `tiny`."""
  c = lifting(stage)
  c.dataset.name = "cmu_mocap_lifting"
  c.dataset.config = ""  # The builder has a single configuration.
  c.dataset.train_split = "clip_131_01+clip_131_02"
  c.dataset.eval_splits = ("clip_131_03",)
  c.log_every_steps = 20
  if stage == "teacher":
    c.num_epochs = 60
    c.optimizer.decay_every_epochs = 20
  else:
    _small_student(c)
    c.num_epochs = 120  # 2040 steps.
    _minute_schedule(c, learning_rate=2e-3)
    # The CMU teacher gives the mirrored depth on about half of the poses.
    c.loss.orient_teacher_depth = True
    c.loss.mirror_average_teacher = True
  if variant == "tiny":
    shrink_lifting(c, batch=16, steps=2, log_every=1)
  elif variant:
    raise ValueError(f"Unknown variant {variant!r}; known: tiny")
  return c


MULTI_HYPOTHESIS_DATASETS = ("synthetic", "cmu", "h36m")


def lifting_multi_hypothesis(dataset: str, variant: str = None
                             ) -> ml_collections.ConfigDict:
  """A two-hypothesis student that picks its depth without ground truth.

  Starts from the dataset's single-hypothesis student (`variant` as there,
  e.g. `tiny`, or the H36M keypoints) and adds: K = 2 hypotheses, 0 taught
  the teacher's anatomically oriented depth and 1 its depth mirror (fixed
  roles; "winner_takes_all" is the alternative, see `lifting`), both
  trained with a winner-takes-all equivariance cycle; a pose prior learned
  from procedural poses against their mirror images; and the choice by
  that prior ("discriminator"). The evaluation also reports the chirality
  and (on clips) temporal choices.
  """
  if dataset not in MULTI_HYPOTHESIS_DATASETS:
    raise ValueError(f"Unknown dataset {dataset!r}; known: "
                     f"{MULTI_HYPOTHESIS_DATASETS}")
  if dataset == "synthetic":
    c = lifting_synthetic("student", variant)
  elif dataset == "cmu":
    c = lifting_cmu("student", variant)
  else:
    c = lifting_h36m("student", variant or "gt")
  c.model.num_hypotheses = 2
  c.loss.hypothesis_distillation = "fixed_roles"
  c.loss.wta_mirror_target = True
  c.hypotheses.choice = "discriminator"
  c.hypotheses.prior_poses = "procedural"
  if variant == "tiny":
    c.hypotheses.prior_bank_size = 256
    c.hypotheses.prior.features = 8
    c.hypotheses.prior.head_dim = 8
  return c


# X-as-Supervision reference settings (configs/<dataset>_multi_<source>_<stage>.py).
XSUP_DATASETS = {
    # name -> (target builder, eval splits, full-size builder overrides,
    #          tiny-fixture builder overrides)
    "h36m": ("h36m_images", ("test",), {},
             dict(train_subjects=(1,), test_subjects=(9,), actions=(2,),
                  subactions=(1,), train_frames=2, test_frames=0)),
    "mpi": ("mpi_inf_3dhp_images", ("validation",), {},
            dict(train_subjects=(1,), validation_subjects=(7,),
                 sequences=(1,), test_sequences=(1,), train_step=1,
                 validation_step=1, views=(0, 2, 4, 7))),
}
# surreal_pseudo builder configs "surreal_*" / "synth_*".
XSUP_SOURCES = ("sur", "synth")
# config.dataset.eval_protocol of each target dataset.
XSUP_EVAL_PROTOCOLS = {"h36m": "h36m", "mpi": "mpi_inf_3dhp"}


def xsup_reference(dataset: str, source: str, stage: str, arg=None, *,
                   synthetic_weight: float, symmetry: float = 0.1,
                   adversarial: float = 0.5, num_epochs: int,
                   milestone_epochs: int = 40) -> ml_collections.ConfigDict:
  """A published XSup configuration.

  Args:
    dataset: "h36m" or "mpi" (target domain).
    source: "sur" (SURREAL renders) or "synth" (renders of sampled poses).
    stage: "s1" or "s2".
    arg: variant; "tiny" for tests.
    synthetic_weight: weight of the synthetic supervision.
    symmetry: bone and keypoint symmetry weights (S2).
    adversarial: discriminator and generator weights (S2).
    num_epochs: training epochs.
    milestone_epochs: lr x0.1 after this epoch.
  """
  if dataset not in XSUP_DATASETS or source not in XSUP_SOURCES:
    raise ValueError(f"Unknown dataset/source {dataset}/{source}")
  c = xsup(stage)
  name, eval_splits, overrides, tiny_overrides = XSUP_DATASETS[dataset]
  c.dataset.name = name
  c.dataset.config = "patch256"
  c.dataset.eval_splits = eval_splits
  c.dataset.eval_protocol = XSUP_EVAL_PROTOCOLS[dataset]
  c.dataset.rect_3d_mm = 2000.0
  for k, v in overrides.items():
    c.dataset.builder_overrides[k] = v
  kind = "surreal" if source == "sur" else "synth"
  c.synthetic.name = "surreal_pseudo"
  c.synthetic.config = f"{kind}_256"
  c.synthetic.split = "train"
  c.loss.synthetic = synthetic_weight
  if stage == "s2":
    c.loss.symmetry_bone = symmetry
    c.loss.symmetry_keypoint = symmetry
    c.loss.discriminator = adversarial
    c.loss.generator = adversarial
  c.num_epochs = num_epochs
  c.optimizer.milestones_epochs = (milestone_epochs,)
  if arg == "tiny":
    c.dataset.config = "patch64"
    c.synthetic.config = f"{kind}_64"
    for k, v in tiny_overrides.items():
      c.dataset.builder_overrides[k] = v
    if dataset == "mpi":
      c.dataset.eval_splits = ("validation", "test")
    # The same small model as `synthetic_multi_*:tiny`.
    _small_xsup_model(c)
    _tiny_xsup_run(c)
  elif arg:
    raise ValueError(f"Unknown variant {arg!r}; known: tiny")
  return c


def _small_xsup_model(c: ml_collections.ConfigDict) -> None:
  """A quarter-width ResNet-18 with a light head: the synthetic default and
  smoke tests. On 2 CPU cores an S1 step at 64 px, batch 4 x 4 views, takes
  about 0.1 s, against 1.9 s for the full-width network with 128 head
  filters, so thousands of steps fit in minutes."""
  c.model.resnet_depth = 18
  c.model.resnet_width = 16
  c.model.depth_dim = 32
  c.model.neighbor_size = 7
  c.model.head_filters = 64
  c.model.physique_features = (16, 32, 64)


def _tiny_xsup_run(c: ml_collections.ConfigDict) -> None:
  """Two steps at batch 2 on one device, logging and saving each time."""
  c.batch_size = 2
  c.eval_batch_size = 8
  c.total_steps = 2
  c.log_every_steps = 1
  c.checkpoint_every_steps = 2
  c.eval_every_steps = 2
  c.image_every_steps = 0
  c.num_devices = 1
  c.data_workers = 0  # Read in the training process (no start-up cost).


# Reduced size of the default run's dataset (the builder's `64` config has
# 8000 / 8000 / 1600 examples).
XSUP_SYNTHETIC_REDUCED = dict(num_synthetic=2000, num_train=2000, num_test=200)


def xsup_synthetic(stage: str, arg: str = None) -> ml_collections.ConfigDict:
  """The built-in synthetic multi-view S1/S2 runs; variants `full`, `tiny`."""
  c = xsup(stage)
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
  _small_xsup_model(c)
  c.batch_size = 4
  c.eval_batch_size = 32
  c.log_every_steps = 20
  c.loss.synthetic = 3.0
  if stage == "s1":
    c.optimizer.generator_lr = 1e-3
    c.optimizer.discriminator_lr = 1e-3
    c.total_steps = 3000
    c.optimizer.milestones_epochs = (5,)  # x0.1 after 2500 steps
  else:
    c.optimizer.generator_lr = 2e-4
    c.optimizer.discriminator_lr = 2e-4
    c.total_steps = 1000
    c.optimizer.milestones_epochs = (40,)
  c.checkpoint_every_steps = 500
  c.eval_every_steps = 0  # 0: once per epoch and at the end.
  c.image_every_steps = 500
  if arg in (None, ""):
    for part in (c.dataset, c.synthetic):
      for k, v in XSUP_SYNTHETIC_REDUCED.items():
        part.builder_overrides[k] = v
  if arg == "full":
    c.total_steps *= 4  # The same epochs' worth at 4x the data.
  elif arg == "tiny":
    c.dataset.config = "tiny"
    c.synthetic.config = "tiny"
    _tiny_xsup_run(c)
  elif arg:
    raise ValueError(f"Unknown variant {arg!r}; known: full, tiny")
  return c
