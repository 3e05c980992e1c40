r"""Equivariant student on the built-in synthetic lifting data (CPU, minutes).

Train the teacher first (configs/ites_teacher_synthetic.py), then:

    python -m xsup.main --config configs/ites_student_synthetic.py \
        --workdir /tmp/xsup/student \
        --config.teacher_checkpoint=/tmp/xsup/teacher

Variants: `:noisy`, `:tiny` (as the teacher's).
"""

from xsup import config_defaults


def get_config(arg: str = None):
  return config_defaults.lifting_synthetic("student", arg)
