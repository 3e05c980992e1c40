r"""X-as-Supervision S1 on Human3.6M with "Synth" synthetic supervision.

    python -m xsup.main --config configs/h36m_multi_synth_s1.py \
        --workdir /tmp/xsup/h36m_multi_synth_s1 \
        --config.dataset.manual_dir=/data --config.synthetic.manual_dir=/data

Reference settings (HM36_Multi_SynthS1): as `h36m_multi_sur_s1.py` but
the labelled renders are the part-segmentation renders of sampled poses
(`surreal_pseudo` config `synth_256`) with weight 1.0; lr 2e-4, 50 epochs,
milestone 40.

Variants: `:tiny` (ResNet-18, 64x64, batch 2, two steps on a tiny fixture;
tests).
"""

from xsup import config_defaults


def get_config(arg: str = None):
  return config_defaults.xsup_reference(
      "h36m", "synth", "s1", arg, synthetic_weight=1.0, num_epochs=50)
