r"""Teacher on CMU motion capture (BVH or ASF/AMC in the manual directory).

    python -m xsup.main --config configs/ites_teacher_cmu.py \
        --workdir /tmp/xsup/cmu_teacher \
        --config.dataset.manual_dir=/path/to/cmu

Each clip is a split (`clip_<id>`); the default trains on 131_01 and 131_02
and tests on 131_03 (the clips shipped with the developer set). Override with
`--config.dataset.train_split=clip_a+clip_b`. Variant `:tiny` for tests.
"""

from xsup import config_defaults


def get_config(arg: str = None):
  return config_defaults.lifting_cmu("teacher", arg)
