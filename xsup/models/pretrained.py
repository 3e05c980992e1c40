"""Loading torchvision ResNet weights into `xsup.models.resnet.ResNet`.

Two steps, so that torch is needed only once:
  1. `scripts/convert_torchvision_resnet.py` turns a torchvision `.pth` state
     dict into a `.npz` of numpy arrays keyed by the torchvision names
     (`write_state_dict_npz` here does the writing);
  2. `load_torchvision_resnet` copies those arrays into the flax `params` /
     `batch_stats` trees.

Mapping (see `resnet.py`): conv weights `[O, I, kh, kw]` -> flax kernels
`[kh, kw, I, O]`; BatchNorm `weight`/`bias` -> params `scale`/`bias`;
`running_mean`/`running_var` -> batch_stats `mean`/`var`. The classifier
(`fc.*`) and `*.num_batches_tracked` are ignored. Loading is strict: every
backbone variable must be in the file with the right shape, and the file may
hold nothing else.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from flax import core as flax_core
from flax import traverse_util
import jax.numpy as jnp
import numpy as np

PyTree = Any

_IGNORED = re.compile(r"^fc\.(weight|bias)$|\.num_batches_tracked$|"
                      r"^num_batches_tracked$")


def flax_to_torchvision_name(collection: str, path: Sequence[str]) -> str:
  """Torchvision state-dict key of one flax backbone variable.

  Args:
    collection: "params" or "batch_stats".
    path: the variable's path inside the backbone tree, e.g.
      ("layer2_0", "downsample_bn", "scale").

  Returns:
    e.g. "layer2.0.downsample.1.weight".
  """
  *modules, leaf = path
  parts = []
  for m in modules:
    block = re.fullmatch(r"(layer\d)_(\d+)", m)
    if block:
      parts += [block.group(1), block.group(2)]
    elif m == "downsample_conv":
      parts += ["downsample", "0"]
    elif m == "downsample_bn":
      parts += ["downsample", "1"]
    else:
      parts.append(m)
  table = {("params", "kernel"): "weight", ("params", "scale"): "weight",
           ("params", "bias"): "bias", ("batch_stats", "mean"): "running_mean",
           ("batch_stats", "var"): "running_var"}
  if (collection, leaf) not in table:
    raise ValueError(f"pretrained.py: no torchvision name for flax variable "
                     f"{collection}/{'/'.join(path)}.")
  return ".".join(parts + [table[(collection, leaf)]])


def torch_to_flax_array(value: np.ndarray) -> np.ndarray:
  """Converts one torchvision array to flax layout (OIHW -> HWIO for convs)."""
  value = np.asarray(value)
  if value.ndim == 4:
    return np.transpose(value, (2, 3, 1, 0))
  return value


def flax_to_torch_shape(shape: Tuple[int, ...]) -> Tuple[int, ...]:
  """Shape a torchvision array must have to become a flax array of `shape`."""
  if len(shape) == 4:
    kh, kw, i, o = shape
    return (o, i, kh, kw)
  return tuple(shape)


def write_state_dict_npz(state_dict: Mapping[str, np.ndarray],
                         path: str) -> None:
  """Writes a torchvision-named state dict of numpy arrays to `path` (.npz).

  Args:
    state_dict: {torchvision key: array}; keys must be non-empty strings.
    path: output file; a ".npz" suffix is added by numpy when missing.
  """
  arrays = {}
  for key, value in state_dict.items():
    if not isinstance(key, str) or not key:
      raise ValueError(f"pretrained.py: state-dict keys must be non-empty "
                       f"strings, got {key!r}.")
    arr = np.asarray(value)
    if arr.dtype == object:
      raise ValueError(f"pretrained.py: state-dict entry {key!r} is not a "
                       f"numeric array (got {type(value).__name__}).")
    arrays[key] = arr
  if not arrays:
    raise ValueError("pretrained.py: refusing to write an empty state dict.")
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  np.savez(path, **arrays)


def _backbone_scope(params: Mapping[str, Any]) -> Tuple[str, ...]:
  if "conv1" in params:
    return ()
  if "backbone" in params and "conv1" in params["backbone"]:
    return ("backbone",)
  raise ValueError("pretrained.py: cannot find a ResNet in `params` (no "
                   "'conv1' at the top level nor under 'backbone'); pass "
                   "`scope` explicitly.")


def _subtree(tree: Mapping[str, Any], scope: Sequence[str], what: str):
  for s in scope:
    if s not in tree:
      raise ValueError(f"pretrained.py: {what} has no entry {s!r} "
                       f"(scope {tuple(scope)}).")
    tree = tree[s]
  return tree


def _replace_subtree(tree: Dict[str, Any], scope: Sequence[str],
                     new: Dict[str, Any]) -> Dict[str, Any]:
  if not scope:
    return new
  out = dict(tree)
  out[scope[0]] = _replace_subtree(tree[scope[0]], scope[1:], new)
  return out


def load_torchvision_resnet(
    npz_path: str, params: PyTree, batch_stats: PyTree,
    scope: Optional[Sequence[str]] = None) -> Tuple[PyTree, PyTree]:
  """Copies torchvision ResNet weights from an `.npz` into flax trees.

  Args:
    npz_path: file written by `scripts/convert_torchvision_resnet.py`.
    params: the model's params (a `ResNet` tree, or a tree with the ResNet
      under `scope`). Only the shapes and dtypes of the backbone leaves are
      read, so an abstract tree (`jax.eval_shape` of `init`) works too.
    batch_stats: the matching batch_stats tree.
    scope: path of the ResNet inside both trees; default: the top level if it
      has "conv1", else ("backbone",) (as in `IntegralDetector`).

  Returns:
    (params, batch_stats) with every backbone variable replaced (same dtypes
    as before); everything outside the backbone untouched.

  Raises:
    FileNotFoundError: no such file.
    ValueError: a backbone variable is missing from the file or has the
      wrong shape, or the file holds keys the backbone does not have.
  """
  if not os.path.exists(npz_path):
    raise FileNotFoundError(f"pretrained.py: no weights file {npz_path!r}.")
  params = flax_core.unfreeze(params)
  batch_stats = flax_core.unfreeze(batch_stats)
  if scope is None:
    scope = _backbone_scope(params)
  scope = tuple(scope)
  trees = {"params": _subtree(params, scope, "params"),
           "batch_stats": _subtree(batch_stats, scope, "batch_stats")}
  with np.load(npz_path) as data:
    stored = {k: data[k] for k in data.files}
  used = set()
  new_trees = {}
  for collection, tree in trees.items():
    flat = traverse_util.flatten_dict(tree)
    new_flat = {}
    for path, leaf in flat.items():
      name = flax_to_torchvision_name(collection, path)
      if name not in stored:
        raise ValueError(f"pretrained.py: {npz_path!r} has no key {name!r} "
                         f"(needed for {collection}/{'/'.join(path)}).")
      value = stored[name]
      expected = flax_to_torch_shape(tuple(leaf.shape))
      if tuple(value.shape) != expected:
        raise ValueError(f"pretrained.py: {npz_path!r} key {name!r} has shape "
                         f"{tuple(value.shape)}, expected {expected} (is the "
                         f"file for another ResNet depth?).")
      new_flat[path] = jnp.asarray(torch_to_flax_array(value),
                                   dtype=leaf.dtype)
      used.add(name)
    new_trees[collection] = traverse_util.unflatten_dict(new_flat)
  unexpected = sorted(k for k in stored
                      if k not in used and not _IGNORED.search(k))
  if unexpected:
    shown = ", ".join(unexpected[:8])
    more = f" and {len(unexpected) - 8} more" if len(unexpected) > 8 else ""
    raise ValueError(f"pretrained.py: {npz_path!r} has keys the backbone does "
                     f"not use: {shown}{more} (is the file for another "
                     f"ResNet depth?).")
  return (_replace_subtree(params, scope, new_trees["params"]),
          _replace_subtree(batch_stats, scope, new_trees["batch_stats"]))
