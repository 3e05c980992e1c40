"""The stem max pool against flax's generic one: values and gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import test_util as jtu
import numpy as np
import pytest

from xsup.models import pooling


def _generic(x):
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))


@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (1, 7, 5, 2), (3, 4, 9, 1)])
def test_values_and_gradients_equal_flax_max_pool(shape):
  rng = np.random.default_rng(sum(shape))
  x = jnp.asarray(rng.normal(size=shape), jnp.float32)
  out = pooling.max_pool_3x3_stride2(x)
  np.testing.assert_array_equal(out, _generic(x))
  assert out.shape == (shape[0], (shape[1] + 1) // 2, (shape[2] + 1) // 2,
                       shape[3])
  cotangent = jnp.asarray(rng.normal(size=out.shape), jnp.float32)
  ours, generic = (jax.grad(lambda x, f=f: jnp.sum(f(x) * cotangent))(x)
                   for f in (pooling.max_pool_3x3_stride2, _generic))
  np.testing.assert_allclose(ours, generic, atol=1e-6)


def test_ties_send_the_whole_gradient_to_one_pixel():
  # After a ReLU many windows are all zero: the cotangent must not be split.
  x = jnp.zeros((1, 6, 6, 1))
  grad = jax.grad(lambda x: jnp.sum(pooling.max_pool_3x3_stride2(x)))(x)
  np.testing.assert_array_equal(grad, jax.grad(
      lambda x: jnp.sum(_generic(x)))(x))
  assert float(jnp.sum(grad)) == 9.0  # 3 x 3 outputs, one pixel each.
  assert set(np.unique(grad).tolist()) <= {0.0, 1.0, 2.0, 4.0}


def test_numerical_gradient():
  rng = np.random.default_rng(1)
  # Distinct values, well separated, so that finite differences stay on
  # one side of every comparison.
  x = jnp.asarray(rng.permutation(50).reshape(1, 5, 5, 2) * 0.1, jnp.float32)
  jtu.check_grads(pooling.max_pool_3x3_stride2, (x,), order=1,
                  modes=("rev",), eps=1e-3)


def test_bfloat16_and_bad_rank():
  x = jnp.asarray(np.random.default_rng(2).normal(size=(1, 4, 4, 2)),
                  jnp.bfloat16)
  out = pooling.max_pool_3x3_stride2(x)
  assert out.dtype == jnp.bfloat16
  np.testing.assert_array_equal(out, _generic(x))
  with pytest.raises(ValueError, match=r"pooling.py: expected NHWC"):
    pooling.max_pool_3x3_stride2(jnp.zeros((4, 4, 2)))
