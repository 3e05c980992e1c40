"""xsup: unsupervised monocular 3D human pose estimation in JAX/Flax."""

from xsup import xla_cpu as _xla_cpu

__version__ = "0.1.0"

# Before JAX starts its backends: XLA:CPU settings (see xsup/xla_cpu.py).
_xla_cpu.apply_defaults()
