r"""Student on Human3.6M (VideoPose3D files), the paper's protocol.

    python -m xsup.main --config configs/ites_student_h36m.py:gt \
        --workdir /tmp/xsup/h36m_student \
        --config.dataset.manual_dir=/path/to/videopose3d_data \
        --config.teacher_checkpoint=/tmp/xsup/h36m_teacher

The argument picks the 2D keypoints: `gt` or `cpn_ft_h36m_dbb`. The manual
directory holds `data_3d_h36m.npz` and `data_2d_h36m_<keypoints>.npz`.
Schedule: SGD momentum 0.9, weight decay 5e-4, lr 1e-3 halved every 15
epochs, batch 128, 40 epochs. Train S1,5,6,7,8; test S9,11.
"""

from xsup import config_defaults


def get_config(arg: str = "gt"):
  return config_defaults.lifting_h36m("student", arg)
