r"""X-as-Supervision stage S1 on the built-in synthetic multi-view data.

    python -m xsup.main --config configs/synthetic_multi_s1.py \
        --workdir /tmp/xsup/synthetic_s1

Synthetic supervision only: the detector learns from the labelled
`synthetic` split of `synthetic_multiview` (random-looking people, known 3D)
and is evaluated on the `test` split of the studio-like target domain.
A quarter-width ResNet-18 at 64x64, batch 4 (16 images), 3000 steps (lr x0.1
after 2500): about 10 minutes on a 2-core CPU. The first run renders a
reduced `64` dataset (2000 synthetic, 2000 target train and 200 test
examples, about two minutes). Continue with `configs/synthetic_multi_s2.py`.

Variants: `:full` (the builder's whole `64` config, 8000/8000/1600
examples, and 4x more steps), `:tiny` (the `tiny` builder config, two
steps; tests).
"""

from xsup import config_defaults


def get_config(arg: str = None):
  return config_defaults.xsup_synthetic("s1", arg)
