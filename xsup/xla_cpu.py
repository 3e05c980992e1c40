"""XLA:CPU settings that xsup adds to `XLA_FLAGS` when it is imported.

XLA reads `XLA_FLAGS` once, when JAX starts its backends, so `import xsup`
(which calls `apply_defaults`) must come before the first computation for
them to apply; the command line, `xsup.predict`, the notebooks and the
benchmarks do that. Imported later, xsup logs a warning that says so (the
same program then runs about 1.6x slower on CPUs: `backends_started`).

The one setting: convolutions are left to XLA:CPU's own emitters instead of
the YNNPACK library fusions that jaxlib 0.10 uses by default. Measured on a
2-core x86 CPU, ResNet-18 at 128 px, 64 images per step, 32 depth bins
(`benchmarks/detector_throughput.py`, `benchmarks/xsup_throughput.py`): the
detector's training step runs at 16.0 images/s with the setting against
11.0-11.6 without, the detector with the mask branch at 8.4-9.0 against
5.4-5.9, and the whole S2 step at 9.1-9.9 against 6.0-6.7. Only XLA's CPU
backend reads the flag; GPU and TPU runs are unchanged.

A flag XLA does not know stops the process, so the setting is only added
for the jaxlib versions it was measured with (`TESTED_JAXLIB`); re-measure
and widen the range when upgrading. `XLA_FLAGS` already naming the flag, or
`XSUP_XLA_CPU_DEFAULTS=0`, leaves `XLA_FLAGS` as it is.
"""

import logging
import os
import sys
from typing import MutableMapping, Optional, Tuple

CONVOLUTION_FLAG = ("--xla_cpu_experimental_ynn_fusion_type="
                    "-LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION")
# [first, last) jaxlib (major, minor) versions the flag was measured with.
TESTED_JAXLIB = ((0, 10), (0, 11))
OPT_OUT = "XSUP_XLA_CPU_DEFAULTS"


def _jaxlib_version() -> Optional[Tuple[int, int]]:
  """Installed jaxlib (major, minor), without importing JAX."""
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  try:
    parts = metadata.version("jaxlib").split(".")
    return int(parts[0]), int(parts[1])
  except (metadata.PackageNotFoundError, ValueError, IndexError):
    return None


def with_defaults(xla_flags: str,
                  jaxlib_version: Optional[Tuple[int, int]]) -> str:
  """`xla_flags` with xsup's CPU setting appended, where it applies.

  Args:
    xla_flags: the current `XLA_FLAGS` value ("" when unset).
    jaxlib_version: installed jaxlib (major, minor), None if unknown.
  Returns:
    The new `XLA_FLAGS` value (unchanged outside `TESTED_JAXLIB` or when
    the flag is already there).
  """
  first, last = TESTED_JAXLIB
  if jaxlib_version is None or not first <= jaxlib_version < last:
    return xla_flags
  if CONVOLUTION_FLAG.split("=", 1)[0] in xla_flags:
    return xla_flags
  return f"{xla_flags} {CONVOLUTION_FLAG}".strip()


def backends_started() -> bool:
  """Whether JAX has already started its backends (and read `XLA_FLAGS`),
  found without importing JAX."""
  bridge = sys.modules.get("jax._src.xla_bridge")
  return bool(getattr(bridge, "_backends", None))


def apply_defaults(environ: MutableMapping[str, str] = os.environ) -> None:
  """Adds xsup's CPU setting to `environ["XLA_FLAGS"]` (see the module
  docstring); `environ[OPT_OUT] = "0"` turns it off. Warns when it comes
  too late to apply."""
  if environ.get(OPT_OUT, "1") == "0":
    return
  before = environ.get("XLA_FLAGS", "")
  flags = with_defaults(before, _jaxlib_version())
  if flags == before:
    return
  environ["XLA_FLAGS"] = flags
  if backends_started():
    logging.warning(
        "xsup was imported after JAX ran its first computation, so its "
        "XLA:CPU setting (%s) does not apply in this process and CPU "
        "convolutions run about 1.6x slower. Import xsup before the first "
        "JAX computation, or put the flag in XLA_FLAGS yourself; %s=0 "
        "silences this.", CONVOLUTION_FLAG, OPT_OUT)
