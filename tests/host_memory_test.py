"""2 MB pages for XLA:CPU's buffers: when the command line restarts itself
with glibc's hugetlb tunable (xsup/host_memory.py)."""

import os
import platform
import subprocess
import sys

import pytest

from xsup import host_memory

LINUX, GLIBC, MADVISE = "Linux", (2, 36), "madvise"


def test_the_tunable_is_added_to_the_existing_ones():
  assert host_memory.with_huge_pages("") == "glibc.malloc.hugetlb=1"
  assert (host_memory.with_huge_pages("glibc.malloc.arena_max=2") ==
          "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1")


def test_restarts_only_where_it_helps():
  restart = host_memory.should_restart
  assert restart({}, LINUX, GLIBC, MADVISE)
  assert restart({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, LINUX,
                 GLIBC, MADVISE)
  # The user's choice, an earlier restart, or the opt-out.
  assert not restart({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, LINUX,
                     GLIBC, MADVISE)
  assert not restart({host_memory.RESTARTED: "1"}, LINUX, GLIBC, MADVISE)
  assert not restart({host_memory.OPT_OUT: "0"}, LINUX, GLIBC, MADVISE)
  # Systems where the tunable does not exist or changes nothing.
  assert not restart({}, "Darwin", None, None)
  assert not restart({}, LINUX, None, MADVISE)  # musl
  assert not restart({}, LINUX, (2, 31), MADVISE)
  for mode in ("always", "never", None):
    assert not restart({}, LINUX, GLIBC, mode)


@pytest.mark.parametrize("text,mode", [
    ("always [madvise] never\n", "madvise"),
    ("[always] madvise never\n", "always"),
    ("always madvise [never]\n", "never")])
def test_transparent_huge_page_mode_is_read(tmp_path, text, mode):
  path = tmp_path / "enabled"
  path.write_text(text)
  assert host_memory.transparent_huge_page_mode(str(path)) == mode
  assert host_memory.transparent_huge_page_mode(
      str(tmp_path / "missing")) is None


# Prints its first argument, the tunables and the restart marker.
_REPORT = ("import os, sys; from xsup import host_memory; "
           "print(sys.argv[1], os.environ.get('GLIBC_TUNABLES', ''), "
           "os.environ.get(host_memory.RESTARTED, ''), sep='|')")
# Restarts into _REPORT where it helps, else reports itself.
_START = ("from xsup import host_memory; "
          f"host_memory.restart_with_huge_pages(['-c', {_REPORT!r}, "
          "'restarted']); " + _REPORT)


@pytest.mark.parametrize("opt_out", [False, True])
def test_the_restarted_process_has_the_tunable(opt_out):
  env = {k: v for k, v in os.environ.items()
         if k not in ("GLIBC_TUNABLES", host_memory.RESTARTED,
                      host_memory.OPT_OUT)}
  if opt_out:
    env[host_memory.OPT_OUT] = "0"
  out = subprocess.run([sys.executable, "-c", _START, "start"], env=env,
                       capture_output=True, text=True, timeout=120,
                       check=True).stdout.strip()
  expected = host_memory.should_restart(
      env, platform.system(), host_memory.glibc_version(),
      host_memory.transparent_huge_page_mode())
  assert not (opt_out and expected)
  if expected:  # Replaced by the restarted process, same output stream.
    assert out == "restarted|glibc.malloc.hugetlb=1|1"
  else:
    assert out == "start||"


def test_the_command_line_restarts_before_parsing_its_flags(tmp_path):
  # A config file that reports the environment it is loaded in, then stops.
  config = tmp_path / "report.py"
  config.write_text(
      "import os, sys\n"
      "def get_config():\n"
      "  print('|'.join(os.environ.get(k, '') for k in "
      f"('GLIBC_TUNABLES', {host_memory.RESTARTED!r})))\n"
      "  sys.exit(0)\n")
  env = {k: v for k, v in os.environ.items()
         if k not in ("GLIBC_TUNABLES", host_memory.RESTARTED,
                      host_memory.OPT_OUT)}
  out = subprocess.run(
      [sys.executable, "-m", "xsup.main", "--config", str(config),
       "--workdir", str(tmp_path / "run")],
      env=env, capture_output=True, text=True, timeout=300, check=True,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  expected = host_memory.should_restart(
      env, platform.system(), host_memory.glibc_version(),
      host_memory.transparent_huge_page_mode())
  last = out.stdout.strip().splitlines()[-1]
  assert last == ("glibc.malloc.hugetlb=1|1" if expected else "|")
