"""XLA:CPU settings added to XLA_FLAGS on `import xsup` (xsup/xla_cpu.py)."""

import json
import os
import subprocess
import sys

import numpy as np

from xsup import xla_cpu

FLAG = xla_cpu.CONVOLUTION_FLAG
FIRST, LAST = xla_cpu.TESTED_JAXLIB


def test_added_only_for_tested_jaxlib_and_never_twice():
  assert xla_cpu.with_defaults("", FIRST) == FLAG
  assert xla_cpu.with_defaults("--xla_a=1", FIRST) == f"--xla_a=1 {FLAG}"
  # Versions it was not measured with, or unknown: unchanged.
  before = (FIRST[0], FIRST[1] - 1) if FIRST[1] else (FIRST[0] - 1, 99)
  for version in (before, LAST, None):
    assert xla_cpu.with_defaults("--xla_a=1", version) == "--xla_a=1"
  # A user's own value of the flag wins.
  mine = "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT"
  assert xla_cpu.with_defaults(mine, FIRST) == mine


def test_opt_out_and_environment():
  env = {"XLA_FLAGS": "--xla_a=1", xla_cpu.OPT_OUT: "0"}
  xla_cpu.apply_defaults(env)
  assert env["XLA_FLAGS"] == "--xla_a=1"
  env = {}
  xla_cpu.apply_defaults(env)
  version = xla_cpu._jaxlib_version()  # pylint: disable=protected-access
  if version is not None and FIRST <= version < LAST:
    assert env["XLA_FLAGS"] == FLAG
  else:
    assert "XLA_FLAGS" not in env


_CONV_GRADIENTS = """
import json, os, sys
import xsup  # Sets XLA_FLAGS before JAX starts its backend.
import jax, jax.numpy as jnp
import numpy as np
rng = np.random.default_rng(0)
x = jnp.asarray(rng.normal(size=(2, 16, 16, 8)), jnp.float32)
w = jnp.asarray(rng.normal(size=(3, 3, 8, 4)), jnp.float32)
def loss(x, w):
  y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return jnp.sum(jnp.tanh(y))
gx, gw = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, w)
print(json.dumps({"flags": os.environ.get("XLA_FLAGS", ""),
                  "gx": np.asarray(gx).ravel().tolist(),
                  "gw": np.asarray(gw).ravel().tolist()}))
"""


def _run(extra_env):
  env = dict(os.environ, JAX_PLATFORMS="cpu", **extra_env)
  env.pop("XLA_FLAGS", None)
  out = subprocess.run([sys.executable, "-c", _CONV_GRADIENTS], env=env,
                       capture_output=True, text=True, timeout=300,
                       check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_installed_jaxlib_accepts_the_flag_with_the_same_gradients():
  with_flag = _run({})
  without = _run({xla_cpu.OPT_OUT: "0"})
  assert without["flags"] == ""
  version = xla_cpu._jaxlib_version()  # pylint: disable=protected-access
  if version is not None and FIRST <= version < LAST:
    assert FLAG in with_flag["flags"]
  for name in ("gx", "gw"):
    np.testing.assert_allclose(with_flag[name], without[name], rtol=1e-4,
                               atol=1e-4)


_LATE_IMPORT = """
import sys
import jax, jax.numpy as jnp
if sys.argv[1] == "late":
  jnp.ones(2).sum().block_until_ready()  # Starts the backend first.
import xsup
from xsup import xla_cpu
print(xla_cpu.backends_started())
"""


def test_a_late_import_warns_that_the_setting_does_not_apply():
  version = xla_cpu._jaxlib_version()  # pylint: disable=protected-access
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  env.pop(xla_cpu.OPT_OUT, None)
  runs = {}
  for order in ("late", "early"):
    out = subprocess.run([sys.executable, "-c", _LATE_IMPORT, order],
                         env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    runs[order] = out
  assert runs["late"].stdout.split()[-1] == "True"
  assert runs["early"].stdout.split()[-1] == "False"
  assert "imported after JAX ran" not in runs["early"].stderr
  if version is not None and FIRST <= version < LAST:
    assert "imported after JAX ran its first computation" in (
        runs["late"].stderr)
