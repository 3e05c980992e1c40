r"""Two-hypothesis student on CMU motion capture, no depth oracle.

Train the CMU teacher first (configs/ites_teacher_cmu.py), then:

    python -m xsup.main --config configs/ites_multi_student_cmu.py \
        --workdir /tmp/xsup/cmu_multi_student \
        --config.dataset.manual_dir=/path/to/cmu \
        --config.teacher_checkpoint=/tmp/xsup/cmu_teacher

Default split: train clip_131_01+clip_131_02, test clip_131_03. The
evaluation's `confident/` entries use no ground truth to pick the depth;
`choice_temporal/` uses the frames of each clip. Variant `:tiny` for tests.
"""

from xsup import config_defaults


def get_config(arg: str = None):
  return config_defaults.lifting_multi_hypothesis("cmu", arg)
