r"""X-as-Supervision S1 on Human3.6M with SURREAL synthetic supervision.

    python -m xsup.main --config configs/h36m_multi_sur_s1.py \
        --workdir /tmp/xsup/h36m_sur_s1 \
        --config.dataset.manual_dir=/data --config.synthetic.manual_dir=/data \
        [--config.model.pretrained_backbone=/data/resnet50.npz]

Reference settings (HM36_Multi_SurS1): 4 views (cameras 1-4), 256x256
patches with the background removed, ResNet-50 integral detector with 3
depth hypotheses (depth_dim 64, window 15), synthetic supervision only
(weight 3.0, SURREAL renders of `surreal_pseudo`), Adam (0.5, 0.999),
lr 2e-4, batch 32, 50 epochs, lr x0.1 after epoch 40. The published run
starts from ImageNet weights (`model.pretrained_backbone`, converted with
`scripts/convert_torchvision_resnet.py`); without them it trains from
scratch. Continue with `configs/h36m_multi_sur_s2.py`.

This file also holds `reference_config`, which the other reference configs
(h36m_multi_*, mpi_multi_*) load.

Variants: `:tiny` (ResNet-18, 64x64, batch 2, two steps on the builders'
patch64 configs restricted to a tiny fixture; tests).
"""

from xsup import config_defaults

DATASETS = {
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
SOURCES = ("sur", "synth")  # surreal_pseudo configs "surreal_*" / "synth_*"


def reference_config(dataset: str, source: str, stage: str, arg=None, *,
                     synthetic_weight: float, symmetry: float = 0.1,
                     adversarial: float = 0.5, num_epochs: int,
                     milestone_epochs: int = 40):
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
  if dataset not in DATASETS or source not in SOURCES:
    raise ValueError(f"Unknown dataset/source {dataset}/{source}")
  c = config_defaults.xsup(stage)
  name, eval_splits, overrides, tiny_overrides = DATASETS[dataset]
  c.dataset.name = name
  c.dataset.config = "patch256"
  c.dataset.eval_splits = eval_splits
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
    c.model.resnet_depth = 18
    c.model.depth_dim = 32
    c.model.neighbor_size = 7
    c.model.head_filters = 128
    c.model.physique_features = (16, 32, 64)
    c.batch_size = 2
    c.eval_batch_size = 8
    c.total_steps = 2
    c.log_every_steps = 1
    c.checkpoint_every_steps = 2
    c.eval_every_steps = 2
    c.num_devices = 1
  elif arg:
    raise ValueError(f"Unknown variant {arg!r}; known: tiny")
  return c


def get_config(arg: str = None):
  return reference_config("h36m", "sur", "s1", arg, synthetic_weight=3.0,
                          num_epochs=50)
