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

The shared settings of all reference configs are in
`xsup.config_defaults.xsup_reference`.

Variants: `:tiny` (ResNet-18, 64x64, batch 2, two steps on the builders'
patch64 configs restricted to a tiny fixture; tests).
"""

from xsup import config_defaults


def get_config(arg: str = None):
  return config_defaults.xsup_reference(
      "h36m", "sur", "s1", arg, synthetic_weight=3.0, num_epochs=50)
