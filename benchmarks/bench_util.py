"""Helpers shared by the benchmark scripts: memory, FLOPs, MFU, compiles.

Imported by the scripts of this folder (run as `python benchmarks/<x>.py`,
which puts this folder first on `sys.path`).
"""

import resource
from typing import Any, Dict, Optional

import jax

# Dense peak FLOP/s per chip (vendor figures, no sparsity) by compute dtype.
# float32 matmuls on these chips run on the tensor cores / MXU at the
# TF32 (GPU) or bf16-pass (TPU) rate that XLA uses by default.
PEAK_FLOPS = {
    "NVIDIA H200": {"bfloat16": 989e12, "float32": 494e12},
    "NVIDIA H100 80GB HBM3": {"bfloat16": 989e12, "float32": 494e12},
    "NVIDIA A100-SXM4-80GB": {"bfloat16": 312e12, "float32": 156e12},
    "NVIDIA A100-SXM4-40GB": {"bfloat16": 312e12, "float32": 156e12},
    "TPU v4": {"bfloat16": 275e12, "float32": 275e12},
    "TPU v5 lite": {"bfloat16": 197e12, "float32": 197e12},
    "TPU v5p": {"bfloat16": 459e12, "float32": 459e12},
    "TPU v6 lite": {"bfloat16": 918e12, "float32": 918e12},
}


def peak_memory_mb() -> float:
  """Device peak bytes in use (accelerators) or the process peak RSS."""
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return stats["peak_bytes_in_use"] / 2**20
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cost_flops(compiled) -> float:
  """FLOPs of one call of a compiled program (XLA's cost analysis; 0 when
  the backend reports none)."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float((cost or {}).get("flops", 0.0))


def mfu(flops_per_s: float, dtype: str,
        peak: Optional[float] = None) -> Dict[str, Any]:
  """Achieved TFLOP/s and the fraction of the chip's peak (None on CPUs
  and chips without a known peak, unless `peak` FLOP/s is given)."""
  device = jax.devices()[0]
  if peak is None:
    peak = PEAK_FLOPS.get(device.device_kind, {}).get(dtype)
  return {"achieved_tflops": flops_per_s / 1e12,
          "peak_tflops": peak / 1e12 if peak else None,
          "mfu": flops_per_s / peak if peak else None}


class CompileCounter:
  """Counts XLA backend compilations from its creation on."""

  def __init__(self):
    self.count = 0
    jax.monitoring.register_event_duration_secs_listener(self._listen)

  def _listen(self, event: str, duration: float, **kwargs) -> None:
    del duration, kwargs
    if event == "/jax/core/compile/backend_compile_duration":
      self.count += 1
