r"""X-as-Supervision S2 on Human3.6M with SURREAL synthetic supervision.

    python -m xsup.main --config configs/h36m_multi_sur_s2.py \
        --workdir /tmp/xsup/h36m_multi_sur_s2 --mode finetune \
        --config.init_checkpoint=/tmp/xsup/h36m_multi_sur_s1 \
        --config.dataset.manual_dir=/data --config.synthetic.manual_dir=/data

Reference settings (HM36_Multi_SurS2), fine-tuning the S1 detector: mask
reconstruction 0.02 (clipped at 0.1), physique reconstruction 0.02,
synthetic supervision 3.0, symmetry bone 0.1 and keypoint 0.1, discriminator
and generator 0.5 (least squares, res_sage_gcn_decouple), Adam (0.5, 0.999)
lr 1e-4 for both networks, batch 32, 15 epochs (the milestone at epoch 40
is never reached). The discriminator starts fresh.

Variants: `:tiny` (ResNet-18, 64x64, batch 2, two steps on a tiny fixture;
tests).
"""

from xsup import config_defaults


def get_config(arg: str = None):
  return config_defaults.xsup_reference(
      "h36m", "sur", "s2", arg, synthetic_weight=3.0, symmetry=0.1, adversarial=0.5, num_epochs=15)
