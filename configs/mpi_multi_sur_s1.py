r"""X-as-Supervision S1 on MPI-INF-3DHP with SURREAL synthetic supervision.

    python -m xsup.main --config configs/mpi_multi_sur_s1.py \
        --workdir /tmp/xsup/mpi_multi_sur_s1 \
        --config.dataset.manual_dir=/data --config.synthetic.manual_dir=/data

Reference settings (MPI_Multi_SurS1): 5 views [0, 2, 4, 7, 8], 256x256
patches without background, ResNet-50, synthetic supervision 1.0 (as
published for this dataset), lr 2e-4, batch 32, 80 epochs, milestone 70.
Evaluated on the `validation` split (S7, S8); add the official test set with
--config.dataset.eval_splits='("validation","test")' when it is in
manual_dir.

Variants: `:tiny` (ResNet-18, 64x64, batch 2, two steps on a tiny fixture;
tests).
"""

from xsup import config_defaults


def get_config(arg: str = None):
  return config_defaults.xsup_reference(
      "mpi", "sur", "s1", arg, synthetic_weight=1.0, num_epochs=80, milestone_epochs=70)
