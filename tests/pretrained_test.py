"""Tests for xsup/models/pretrained.py and the conversion script."""

import importlib.util
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xsup.models import pretrained
from xsup.models import resnet

_SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "scripts",
                       "convert_torchvision_resnet.py")

# A few real keys (and shapes) of torchvision's resnet18().state_dict().
_REAL_RESNET18_KEYS = {
    "conv1.weight": (64, 3, 7, 7),
    "bn1.running_var": (64,),
    "layer1.0.conv1.weight": (64, 64, 3, 3),
    "layer1.1.bn2.bias": (64,),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "layer2.0.downsample.1.running_mean": (128,),
    "layer3.1.conv2.weight": (256, 256, 3, 3),
    "layer4.1.bn2.weight": (512,),
}


def _abstract_resnet18(size=32):
  model = resnet.ResNet(18)
  variables = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((1, size, size, 3)), train=False))
  return model, variables


def _fake_state_dict(variables, seed=0):
  """Random arrays under torchvision names, shapes from the flax tree."""
  rng = np.random.default_rng(seed)
  state = {}
  for collection in ("params", "batch_stats"):
    flat = jax.tree_util.tree_flatten_with_path(variables[collection])[0]
    for path, leaf in flat:
      keys = tuple(p.key for p in path)
      name = pretrained.flax_to_torchvision_name(collection, keys)
      shape = pretrained.flax_to_torch_shape(tuple(leaf.shape))
      value = rng.normal(size=shape) * 0.1
      if name.endswith("running_var"):
        value = rng.uniform(0.5, 2.0, size=shape)
      state[name] = value.astype(np.float32)
      if name.endswith("running_mean"):
        state[name[:-len("running_mean")] + "num_batches_tracked"] = (
            np.array(7, np.int64))
  state["fc.weight"] = rng.normal(size=(1000, 512)).astype(np.float32)
  state["fc.bias"] = np.zeros((1000,), np.float32)
  return state


def test_flax_names_are_torchvision_names():
  _, variables = _abstract_resnet18()
  state = _fake_state_dict(variables)
  # torchvision's resnet18 state dict has 122 entries: 20 convs, 20 BNs x
  # (4 arrays + num_batches_tracked), fc weight and bias.
  assert len(state) == 122
  for key, shape in _REAL_RESNET18_KEYS.items():
    assert state[key].shape == shape, key
  pattern = re.compile(r"^(conv1|bn1|fc|layer[1-4]\.\d+\.(conv\d|bn\d|"
                       r"downsample\.[01]))\.")
  assert all(pattern.match(k) for k in state)


def test_load_places_arrays_and_forward_matches_torch_semantics(tmp_path):
  model, abstract = _abstract_resnet18()
  state = _fake_state_dict(abstract)
  path = str(tmp_path / "resnet18.npz")
  pretrained.write_state_dict_npz(state, path)
  params, stats = pretrained.load_torchvision_resnet(
      path, abstract["params"], abstract["batch_stats"])

  np.testing.assert_array_equal(params["conv1"]["kernel"][2, 5, 1, 17],
                                state["conv1.weight"][17, 1, 2, 5])
  np.testing.assert_array_equal(
      params["layer2_0"]["downsample_conv"]["kernel"][0, 0, 63, 100],
      state["layer2.0.downsample.0.weight"][100, 63, 0, 0])
  np.testing.assert_array_equal(params["layer3_1"]["bn2"]["scale"],
                                state["layer3.1.bn2.weight"])
  np.testing.assert_array_equal(params["layer4_0"]["bn1"]["bias"],
                                state["layer4.0.bn1.bias"])
  np.testing.assert_array_equal(stats["layer2_0"]["downsample_bn"]["var"],
                                state["layer2.0.downsample.1.running_var"])
  np.testing.assert_array_equal(stats["bn1"]["mean"],
                                state["bn1.running_mean"])
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))

  # The stem computes torch's conv2d(stride 2, padding 3) + eval BatchNorm.
  x = np.random.default_rng(1).uniform(size=(1, 32, 32, 3)).astype(np.float32)
  run = jax.jit(lambda v, x: model.apply(
      v, x, train=False, capture_intermediates=True,
      mutable=["intermediates"]))
  out, inter = run({"params": params, "batch_stats": stats}, x)
  conv = np.asarray(inter["intermediates"]["conv1"]["__call__"][0])
  bn = np.asarray(inter["intermediates"]["bn1"]["__call__"][0])
  w = state["conv1.weight"].astype(np.float64)  # [O, I, 7, 7]
  xp = np.pad(x[0].astype(np.float64), ((3, 3), (3, 3), (0, 0)))
  ref = np.zeros((16, 16, 64))
  for ky in range(7):
    for kx in range(7):
      patch = xp[ky:ky + 32:2, kx:kx + 32:2]  # [16, 16, I]
      ref += np.einsum("hwi,oi->hwo", patch, w[:, :, ky, kx])
  np.testing.assert_allclose(conv[0], ref, atol=1e-4)
  ref_bn = ((ref - state["bn1.running_mean"]) /
            np.sqrt(state["bn1.running_var"] + 1e-5) * state["bn1.weight"] +
            state["bn1.bias"])
  np.testing.assert_allclose(bn[0], ref_bn, atol=1e-4)

  # A different file changes the features.
  state2 = _fake_state_dict(abstract, seed=5)
  path2 = str(tmp_path / "other.npz")
  pretrained.write_state_dict_npz(state2, path2)
  params2, stats2 = pretrained.load_torchvision_resnet(
      path2, abstract["params"], abstract["batch_stats"])
  out2, _ = run({"params": params2, "batch_stats": stats2}, x)
  assert out.shape == (1, 1, 1, 512)
  assert float(jnp.abs(out - out2).max()) > 1e-3


def test_scope_leaves_other_subtrees_untouched(tmp_path):
  _, abstract = _abstract_resnet18()
  path = str(tmp_path / "r18.npz")
  pretrained.write_state_dict_npz(_fake_state_dict(abstract), path)
  head = {"final": {"kernel": jnp.full((1, 1, 4, 2), 3.0)}}
  params = {"backbone": abstract["params"], "head": head}
  stats = {"backbone": abstract["batch_stats"], "head": {}}
  new_params, new_stats = pretrained.load_torchvision_resnet(
      path, params, stats)  # Scope found automatically: ("backbone",).
  assert new_params["head"]["final"]["kernel"] is head["final"]["kernel"]
  assert new_params["backbone"]["conv1"]["kernel"].shape == (7, 7, 3, 64)
  assert "mean" in new_stats["backbone"]["bn1"]


def test_errors_name_file_and_key(tmp_path):
  _, abstract = _abstract_resnet18()
  state = _fake_state_dict(abstract)

  def load(p):
    return pretrained.load_torchvision_resnet(p, abstract["params"],
                                              abstract["batch_stats"])

  missing = dict(state)
  del missing["layer3.0.bn1.running_mean"]
  path = str(tmp_path / "missing.npz")
  pretrained.write_state_dict_npz(missing, path)
  with pytest.raises(ValueError, match=r"missing\.npz.*layer3\.0\.bn1\."
                     r"running_mean"):
    load(path)

  bad = dict(state)
  bad["layer1.0.conv1.weight"] = np.zeros((64, 64, 1, 1), np.float32)
  path = str(tmp_path / "badshape.npz")
  pretrained.write_state_dict_npz(bad, path)
  with pytest.raises(ValueError, match=r"badshape\.npz.*layer1\.0\.conv1\."
                     r"weight.*\(64, 64, 1, 1\).*\(64, 64, 3, 3\)"):
    load(path)

  extra = dict(state)
  extra["layer1.2.conv1.weight"] = np.zeros((64, 64, 3, 3), np.float32)
  path = str(tmp_path / "extra.npz")
  pretrained.write_state_dict_npz(extra, path)
  with pytest.raises(ValueError, match=r"extra\.npz.*layer1\.2\.conv1"):
    load(path)

  with pytest.raises(FileNotFoundError, match="nowhere.npz"):
    load(str(tmp_path / "nowhere.npz"))
  with pytest.raises(ValueError, match="non-empty"):
    pretrained.write_state_dict_npz({"": np.zeros(1)}, path)


def test_convert_script_helpers_without_torch():
  spec = importlib.util.spec_from_file_location("convert_script", _SCRIPT)
  script = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(script)  # Must import without torch.
  wrapped = {"state_dict": {"module.conv1.weight": np.ones((2, 3, 1, 1)),
                            "module.fc.bias": [1.0, 2.0]}}
  state = script.to_numpy(script.unwrap_state_dict(wrapped))
  assert sorted(state) == ["conv1.weight", "fc.bias"]
  assert isinstance(state["fc.bias"], np.ndarray)
  with pytest.raises(ValueError, match="expected a dict"):
    script.unwrap_state_dict([1, 2])
