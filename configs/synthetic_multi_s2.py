r"""X-as-Supervision stage S2 on the built-in synthetic multi-view data.

    python -m xsup.main --config configs/synthetic_multi_s2.py \
        --workdir /tmp/xsup/synthetic_s2 --mode finetune \
        --config.init_checkpoint=/tmp/xsup/synthetic_s1

Starts from the S1 detector (`configs/synthetic_multi_s1.py`) and adds the
unsupervised losses on the target domain's images and masks: skeleton-mask
and physique reconstruction, limb symmetry and the adversarial pose prior
(real poses from the procedural pose sampler). The S1 network, batch 4,
1000 steps: minutes on a 2-core CPU. Use the same variant as for S1.

Variants: `:full` (the builder's whole `64` config, 4x more steps),
`:tiny` (the `tiny` builder config, two steps; tests).
"""

from xsup import config_defaults


def get_config(arg: str = None):
  return config_defaults.xsup_synthetic("s2", arg)
