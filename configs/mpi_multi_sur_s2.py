r"""X-as-Supervision S2 on MPI-INF-3DHP with SURREAL synthetic supervision.

    python -m xsup.main --config configs/mpi_multi_sur_s2.py \
        --workdir /tmp/xsup/mpi_multi_sur_s2 --mode finetune \
        --config.init_checkpoint=/tmp/xsup/mpi_multi_sur_s1 \
        --config.dataset.manual_dir=/data --config.synthetic.manual_dir=/data

Reference settings (MPI_Multi_SurS2): mask and physique reconstruction
0.02, synthetic supervision 3.0, symmetry bone and keypoint 0.05,
discriminator and generator 1.0, lr 1e-4, batch 32, 10 epochs.

Variants: `:tiny` (ResNet-18, 64x64, batch 2, two steps on a tiny fixture;
tests).
"""

from xsup import config_defaults


def get_config(arg: str = None):
  return config_defaults.xsup_reference(
      "mpi", "sur", "s2", arg, synthetic_weight=3.0, symmetry=0.05, adversarial=1.0, num_epochs=10)
