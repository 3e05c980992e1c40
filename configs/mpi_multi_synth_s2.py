r"""X-as-Supervision S2 on MPI-INF-3DHP with "Synth" synthetic supervision.

    python -m xsup.main --config configs/mpi_multi_synth_s2.py \
        --workdir /tmp/xsup/mpi_multi_synth_s2 --mode finetune \
        --config.init_checkpoint=/tmp/xsup/mpi_multi_sur_s1 \
        --config.dataset.manual_dir=/data --config.synthetic.manual_dir=/data

Reference settings (MPI_Multi_SynthS2): mask and physique reconstruction
0.02, "Synth" synthetic supervision 1.0, symmetry 0.05, discriminator and
generator 1.0, lr 1e-4, batch 32, 15 epochs. (The published release has no
MPI Synth S1 config; start from `mpi_multi_sur_s1.py` or a Synth S1 run made
with --config.synthetic.config=synth_256.)

Variants: `:tiny` (ResNet-18, 64x64, batch 2, two steps on a tiny fixture;
tests).
"""

from xsup import config_defaults


def get_config(arg: str = None):
  return config_defaults.xsup_reference(
      "mpi", "synth", "s2", arg, synthetic_weight=1.0, symmetry=0.05, adversarial=1.0, num_epochs=15)
