r"""X-as-Supervision S2 on Human3.6M with "Synth" synthetic supervision.

    python -m xsup.main --config configs/h36m_multi_synth_s2.py \
        --workdir /tmp/xsup/h36m_multi_synth_s2 --mode finetune \
        --config.init_checkpoint=/tmp/xsup/h36m_multi_synth_s1 \
        --config.dataset.manual_dir=/data --config.synthetic.manual_dir=/data

Reference settings (HM36_Multi_SynthS2): as `h36m_multi_sur_s2.py` with
the "Synth" renders at weight 1.0.

Variants: `:tiny` (ResNet-18, 64x64, batch 2, two steps on a tiny fixture;
tests).
"""

from xsup import config_defaults


def get_config(arg: str = None):
  return config_defaults.xsup_reference(
      "h36m", "synth", "s2", arg, synthetic_weight=1.0, symmetry=0.1, adversarial=0.5, num_epochs=15)
