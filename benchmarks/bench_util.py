"""Helpers shared by the benchmark scripts: memory, FLOPs, MFU, a measured
matmul ceiling, compiles.

Imported by the scripts of this folder (run as `python benchmarks/<x>.py`,
which puts this folder first on `sys.path`).
"""

import resource
import time
from typing import Any, Dict, Optional

import xsup  # noqa: F401  First, so that its XLA:CPU setting applies.
import jax
import jax.numpy as jnp

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


class HostCost:
  """Kernel CPU time and first-touch page faults of the process over a block.

  XLA:CPU takes a fresh block of memory for each call's temporaries; the
  operating system zeroes its pages when they are first written, which is
  kernel time that the step's wall time includes (large for small, fast
  steps such as the lifting student's).

      with HostCost() as cost:
        ...  # n steps
      cost.per_call(n)  # {"kernel_cpu_s": ..., "page_faults_mb": ...}
  """

  def __enter__(self):
    self._start = resource.getrusage(resource.RUSAGE_SELF)
    return self

  def __exit__(self, *exc):
    self._end = resource.getrusage(resource.RUSAGE_SELF)
    return False

  def per_call(self, calls: int) -> Dict[str, float]:
    """Kernel CPU seconds (all threads) and MB of minor page faults per
    call, over `calls` calls in the block."""
    faults = self._end.ru_minflt - self._start.ru_minflt
    return {"kernel_cpu_s": (self._end.ru_stime - self._start.ru_stime) /
                            calls,
            "page_faults_mb": faults * resource.getpagesize() / 2**20 /
                              calls}


def cost_flops(compiled) -> float:
  """FLOPs of one call of a compiled program (XLA's cost analysis; 0 when
  the backend reports none)."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float((cost or {}).get("flops", 0.0))


def mfu(flops_per_s: float, dtype: str,
        peak: Optional[float] = None,
        ceiling: Optional[float] = None) -> Dict[str, Any]:
  """Achieved TFLOP/s and the fraction of the chip's peak (None on CPUs
  and chips without a known peak, unless `peak` FLOP/s is given); with a
  measured `ceiling` (`matmul_ceiling`, FLOP/s), also the fraction of it."""
  device = jax.devices()[0]
  if peak is None:
    peak = PEAK_FLOPS.get(device.device_kind, {}).get(dtype)
  out = {"achieved_tflops": flops_per_s / 1e12,
         "peak_tflops": peak / 1e12 if peak else None,
         "mfu": flops_per_s / peak if peak else None}
  if ceiling:
    out.update(matmul_ceiling_tflops=ceiling / 1e12,
               fraction_of_matmul_ceiling=flops_per_s / ceiling)
  return out


def matmul_ceiling(dtype: str = "float32", size: int = 2048,
                   repeats: int = 10) -> float:
  """FLOP/s of one `[size, size]` matmul on the first device.

  The practical ceiling of a compute-bound step on this machine (the rate
  XLA reaches on its most favourable op), to set a step's achieved rate
  against where no vendor peak applies (CPUs). The fastest of `repeats`
  calls, so that a busy moment does not lower the ceiling.
  """
  a = jnp.ones((size, size), dtype)
  matmul = jax.jit(lambda x: x @ x)
  jax.block_until_ready(matmul(a))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(matmul(a))
    times.append(time.perf_counter() - start)
  return 2.0 * size ** 3 / min(times)


class CompileCounter:
  """Counts XLA backend compilations from its creation on."""

  def __init__(self):
    self.count = 0
    jax.monitoring.register_event_duration_secs_listener(self._listen)

  def _listen(self, event: str, duration: float, **kwargs) -> None:
    del duration, kwargs
    if event == "/jax/core/compile/backend_compile_duration":
      self.count += 1
