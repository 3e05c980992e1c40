"""`loop.run_chunked`: chunked, padded inference over any number of inputs."""

import numpy as np
import pytest

from xsup.train import loop


def _recording_fn(shapes):
  def fn(variables, x):
    shapes.append(x.shape)
    return {"y": x * variables["w"], "s": x.sum(axis=-1)}
  return fn


@pytest.mark.parametrize("pad_to_batch,expected_chunk", [(False, 5), (True, 8)])
def test_chunks_share_one_shape_and_outputs_match_one_pass(pad_to_batch,
                                                           expected_chunk):
  x = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
  shapes = []
  out = loop.run_chunked(_recording_fn(shapes), {"w": 2.0}, x, batch_size=8,
                         pad_to_batch=pad_to_batch)
  assert shapes == [(expected_chunk, 3)]
  np.testing.assert_array_equal(out["y"], 2.0 * x)
  np.testing.assert_array_equal(out["s"], x.sum(axis=-1))


def test_last_chunk_is_padded_then_trimmed():
  x = np.arange(7 * 2, dtype=np.float32).reshape(7, 2)
  shapes = []
  out = loop.run_chunked(_recording_fn(shapes), {"w": 1.0}, x, batch_size=3)
  assert shapes == [(3, 2)] * 3
  np.testing.assert_array_equal(out["y"], x)


def test_no_inputs_is_an_error():
  with pytest.raises(ValueError, match="no inputs"):
    loop.run_chunked(_recording_fn([]), {"w": 1.0},
                     np.zeros((0, 3), np.float32), batch_size=4)
