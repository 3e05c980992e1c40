r"""Two-hypothesis student on Human3.6M (VideoPose3D files), no depth oracle.

    python -m xsup.main --config configs/ites_multi_student_h36m.py:gt \
        --workdir /tmp/xsup/h36m_multi_student \
        --config.dataset.manual_dir=/path/to/videopose3d_data \
        --config.teacher_checkpoint=/tmp/xsup/h36m_teacher

The argument picks the 2D keypoints (`gt` or `cpn_ft_h36m_dbb`); the
schedule and network are the paper's student's (configs/ites_student_h36m.py)
with two hypotheses (the oriented depth and its mirror), a procedural
pose prior and the choice by that prior.
"""

from xsup import config_defaults


def get_config(arg: str = "gt"):
  return config_defaults.lifting_multi_hypothesis("h36m", arg)
