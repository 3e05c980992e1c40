r"""X-as-Supervision stage S2 on the built-in synthetic multi-view data.

    python -m xsup.main --config configs/synthetic_multi_s2.py \
        --workdir /tmp/xsup/synthetic_s2 --mode finetune \
        --config.init_checkpoint=/tmp/xsup/synthetic_s1

Starts from the S1 detector (`configs/synthetic_multi_s1.py`) and adds the
unsupervised losses on the target domain's images and masks: skeleton-mask
and physique reconstruction, limb symmetry and the adversarial pose prior
(real poses from the procedural pose sampler). ResNet-18 at 64x64, batch 4,
100 steps: minutes on a 2-core CPU. Use the same variant as for S1.

Variants: `:full` (the builder's whole `64` config, 20x more steps),
`:tiny` (the `tiny` builder config, two steps; tests).
"""

import importlib.util
import os

from xsup import config_defaults


def _s1_module():
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "synthetic_multi_s1.py")
  spec = importlib.util.spec_from_file_location("synthetic_multi_s1", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def get_config(arg: str = None):
  c = config_defaults.xsup("s2")
  return _s1_module().synthetic_multiview(c, "s2", arg)
