"""`XLA_FLAGS` of the test processes (pytest's and the ones tests start)."""

# The tests compile many small programs and run each for a few steps, so
# LLVM's optimisation passes cost more compile time than they save: the
# whole suite (`pytest -n 2`, 2-core CPU) ran in 582 s with this flag, in
# the test processes and in the ones they start, against 806 s without.
# Results can differ from optimised code in the last bits (the order of a
# vectorised sum); the tests compare runs made under the same flags, or use
# tolerances far above that.
FAST_COMPILE = "--xla_backend_optimization_level=0"


def xla_flags(devices: int) -> str:
  """`XLA_FLAGS` for a test process with `devices` fake CPU devices."""
  return f"--xla_force_host_platform_device_count={devices} {FAST_COMPILE}"
