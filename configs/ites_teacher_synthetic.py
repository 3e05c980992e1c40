r"""Invariant teacher on the built-in synthetic lifting data (CPU, minutes).

    python -m xsup.main --config configs/ites_teacher_synthetic.py \
        --workdir /tmp/xsup/teacher

Variants: `:noisy` (2D noise like a detector's), `:tiny` (seconds; tests).
"""

from xsup import config_defaults


def get_config(arg: str = None):
  return config_defaults.lifting_synthetic("teacher", arg)
