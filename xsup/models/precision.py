"""Mixed precision: float32 parameters, computation in a lower dtype.

`config.model.dtype` names the compute dtype of a method's trained network
(`"float32"`, the default, or `"bfloat16"`). Parameters, optimiser state and
BatchNorm statistics stay float32 either way; only the forward and backward
passes run in the compute dtype.

The image detector takes the dtype as a module attribute (its integral
step stays float32); other networks are wrapped in `MixedPrecision`, which
casts their float32 parameters and floating inputs when applied, so flax's
dtype promotion runs every layer in the compute dtype (BatchNorm still
reduces its statistics in float32). Gradients come back float32 through the
casts.
"""

from typing import Any

import jax
import jax.numpy as jnp

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(name: str, where: str = "config.model.dtype") -> Any:
  """The jnp dtype called `name`; a clear error for an unknown name."""
  if name not in DTYPES:
    raise ValueError(f"{where}={name!r}; known: {sorted(DTYPES)}")
  return DTYPES[name]


def cast_floating(tree: Any, dtype: Any) -> Any:
  """Casts the floating-point leaves of `tree` to `dtype` (others kept)."""
  def cast(x):
    if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating):
      return x.astype(dtype)
    return x
  return jax.tree.map(cast, tree)


class MixedPrecision:
  """A flax module applied in `dtype` with its float32 parameters.

  `init` is the module's (float32 parameters). `apply(variables, *args,
  **kwargs)` casts `variables["params"]` and the floating positional
  arguments to `dtype`; other collections (e.g. `batch_stats`) and keyword
  arguments pass unchanged. Outputs are in `dtype` where the network
  computes them. Other attributes are the module's.
  """

  def __init__(self, module: Any, dtype: Any):
    self.module = module
    self.dtype = dtype

  def init(self, *args, **kwargs):
    return self.module.init(*args, **kwargs)

  def apply(self, variables, *args, **kwargs):
    variables = dict(variables)
    variables["params"] = cast_floating(variables["params"], self.dtype)
    return self.module.apply(variables, *cast_floating(args, self.dtype),
                             **kwargs)

  def __getattr__(self, name: str) -> Any:
    return getattr(self.module, name)


def with_compute_dtype(module: Any, dtype: Any) -> Any:
  """`module` itself for float32, else wrapped in `MixedPrecision`."""
  if jnp.dtype(dtype) == jnp.float32:
    return module
  return MixedPrecision(module, dtype)
