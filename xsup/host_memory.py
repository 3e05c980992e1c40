"""2 MB pages for XLA:CPU's per-call buffers (Linux, glibc >= 2.35).

XLA:CPU takes a fresh block of memory for the temporaries of every call of
a compiled program, and the kernel zeroes each 4 KB page of it when it is
first written. For small, fast steps that is a large share of the step:
the lifting student's training step (batch 128) faults in 446 MB per step,
about 0.23 s of kernel CPU time in a 0.45 s step. With glibc's
`glibc.malloc.hugetlb=1` tunable, large blocks are backed by transparent
huge pages (2 MB) instead. Measured on a 2-core x86 CPU, 3 interleaved
runs each (`benchmarks/lifting_throughput.py`), without -> with:
  * student training 237-285 -> 310-374 poses/s (+31% in each pair), its
    kernel CPU time 0.23 -> 0.05 s per step;
  * teacher training 960-993 -> 1000-1080 poses/s;
  * inference (batch 1024) within noise: teacher 22.1-23.5k -> 21.0-22.4k,
    student 5.2-6.7k -> 6.4-8.2k poses/s; peak memory unchanged.

glibc reads `GLIBC_TUNABLES` only when a process starts, so the command
line (`python -m xsup.main`, `xsup`) restarts itself once with it set
(`restart_with_huge_pages`) where it helps: Linux with glibc >= 2.35 and
transparent huge pages in `madvise` mode (in `always` mode large blocks get
them anyway; in `never` mode they cannot). `XSUP_HUGE_PAGES=0` turns this
off; a `GLIBC_TUNABLES` that already names `glibc.malloc.hugetlb` is left as
it is. Importing xsup as a library changes nothing.
"""

import logging
import os
import platform
import subprocess
import sys
from typing import Mapping, Optional, Sequence, Tuple

TUNABLE = "glibc.malloc.hugetlb"
OPT_OUT = "XSUP_HUGE_PAGES"
# Set in the restarted process: never restart twice (glibc drops
# GLIBC_TUNABLES from the environment in secure-execution mode).
RESTARTED = "XSUP_HUGE_PAGES_RESTARTED"
_MIN_GLIBC = (2, 35)
_THP_MODE = "/sys/kernel/mm/transparent_hugepage/enabled"


def glibc_version() -> Optional[Tuple[int, int]]:
  """(major, minor) of the C library if it is glibc, else None."""
  name, version = platform.libc_ver()
  if name != "glibc":
    return None
  try:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)
  except ValueError:
    return None


def transparent_huge_page_mode(path: str = _THP_MODE) -> Optional[str]:
  """The kernel's transparent huge page mode ("always", "madvise",
  "never"), or None where it cannot be read."""
  try:
    with open(path) as f:
      text = f.read()
  except OSError:
    return None
  start, end = text.find("["), text.find("]")
  return text[start + 1:end] if 0 <= start < end else None


def with_huge_pages(tunables: str) -> str:
  """`GLIBC_TUNABLES` value `tunables` with `glibc.malloc.hugetlb=1` added
  (colon-separated, as glibc reads it)."""
  return ":".join([t for t in tunables.split(":") if t] + [f"{TUNABLE}=1"])


def should_restart(environ: Mapping[str, str], system: str,
                   glibc: Optional[Tuple[int, int]],
                   thp_mode: Optional[str]) -> bool:
  """Whether a process with `environ` on this system gains from restarting
  with the tunable (see the module docstring)."""
  if environ.get(OPT_OUT, "1") == "0" or environ.get(RESTARTED):
    return False
  if TUNABLE in environ.get("GLIBC_TUNABLES", ""):
    return False  # Already set, or chosen otherwise by the user.
  return (system == "Linux" and glibc is not None and glibc >= _MIN_GLIBC
          and thp_mode == "madvise")


def restart_with_huge_pages(argv: Sequence[str]) -> None:
  """Replaces this process by `argv` (run by the same interpreter with the
  same interpreter options) with the tunable set, where it helps; returns
  without doing anything otherwise. Call it before any work is done."""
  if not should_restart(os.environ, platform.system(), glibc_version(),
                        transparent_huge_page_mode()):
    return
  env = dict(os.environ)
  env["GLIBC_TUNABLES"] = with_huge_pages(env.get("GLIBC_TUNABLES", ""))
  env[RESTARTED] = "1"
  # pylint: disable-next=protected-access
  command = ([sys.executable] + subprocess._args_from_interpreter_flags() +
             list(argv))
  logging.info("Restarting with GLIBC_TUNABLES=%s (2 MB pages for XLA:CPU's "
               "buffers; %s=0 turns this off).", env["GLIBC_TUNABLES"],
               OPT_OUT)
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, command, env)
