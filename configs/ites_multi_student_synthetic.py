r"""Two-hypothesis student on the built-in synthetic data, no depth oracle.

Train the teacher first (configs/ites_teacher_synthetic.py), then:

    python -m xsup.main --config configs/ites_multi_student_synthetic.py \
        --workdir /tmp/xsup/multi_student \
        --config.teacher_checkpoint=/tmp/xsup/teacher

Variants: `:noisy`, `:tiny` (as the teacher's).
"""

from xsup import config_defaults


def get_config(arg: str = None):
  return config_defaults.lifting_multi_hypothesis("synthetic", arg)
