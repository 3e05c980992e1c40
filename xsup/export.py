"""Parameters -> a flat `.npz` and back, with the model rebuilt from it.

`--mode export` writes `<workdir>/export/params.npz` (flat names such as
`params/trunk/Dense_0/kernel` -> numpy arrays) and
`<workdir>/export/model.json` (`{"model": name, "kwargs": {...},
"inference": {...}}`). The optional `inference` field holds what running the
model needs besides its parameters (written by the task's
`export_metadata()`), e.g. for the image detector
`{"input": "image", "image_size": 64, "rect_3d_mm": 2200.0,
"skeleton": "h36m18", ...}` and for the lifting networks
`{"input": "keypoints_2d", "skeleton": "h36m17", "norm_scale": ...}`.
Exports written before that field existed still load (`load_metadata`
returns `{}`).

Loading for deployment needs neither the config nor orbax:

    model, variables = xsup.export.load_model("workdir/export")
    pose_3d = model.apply(variables, keypoints_2d, train=False)

`xsup.predict` wraps this for images and 2D keypoints.
"""

import importlib
import json
import os
import zipfile
import zlib
from typing import Any, Dict, Optional, Tuple

import flax
import jax
import numpy as np

# Model name -> (module, class) for rebuilding exported models.
MODELS = {
    "teacher": ("xsup.models.teacher", "Teacher"),
    "student": ("xsup.models.student", "Student"),
    "hypothesis_student": ("xsup.models.student", "HypothesisStudent"),
    "detector": ("xsup.models.detector", "IntegralDetector"),
}

PARAMS_FILE = "params.npz"
MODEL_FILE = "model.json"


def flatten(variables: Dict[str, Any]) -> Dict[str, np.ndarray]:
  """Nested variables -> `{"a/b/c": array}` on the host."""
  flat = flax.traverse_util.flatten_dict(jax.device_get(variables), sep="/")
  return {k: np.asarray(v) for k, v in flat.items()}


def unflatten(flat: Dict[str, np.ndarray]) -> Dict[str, Any]:
  return flax.traverse_util.unflatten_dict(dict(flat), sep="/")


def save(directory: str, model_name: str, model_kwargs: Dict[str, Any],
         variables: Dict[str, Any],
         metadata: Optional[Dict[str, Any]] = None) -> str:
  """Writes `params.npz` and `model.json` into `directory`; returns it.

  Args:
    directory: output folder (created).
    model_name: a key of `MODELS`.
    model_kwargs: JSON-serialisable constructor arguments of the model.
    variables: nested flax variables (params, batch_stats, ...).
    metadata: JSON-serialisable inference settings, stored as
      `model.json["inference"]` (omitted when None).
  """
  if model_name not in MODELS:
    raise ValueError(f"Unknown model {model_name!r}; known: {sorted(MODELS)}")
  spec = {"model": model_name, "kwargs": model_kwargs}
  if metadata is not None:
    spec["inference"] = dict(metadata)
  text = json.dumps(spec, indent=2)  # Fails before anything is written.
  os.makedirs(directory, exist_ok=True)
  np.savez(os.path.join(directory, PARAMS_FILE), **flatten(variables))
  with open(os.path.join(directory, MODEL_FILE), "w") as f:
    f.write(text)
  return directory


def load_variables(path: str) -> Dict[str, Any]:
  """Reads a `params.npz` (or a directory holding one) into nested variables."""
  if os.path.isdir(path):
    path = os.path.join(path, PARAMS_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"No exported parameters at {path!r}")
  try:
    with np.load(path) as data:
      if not hasattr(data, "files"):
        raise ValueError("a single array, not an .npz archive")
      return unflatten({k: data[k] for k in data.files})
  except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError,
          zlib.error) as e:
    raise ValueError(
        f"{path}: not a readable parameter archive ({type(e).__name__}: "
        f"{e}); it may be truncated or damaged: export again with "
        "`python -m xsup.main ... --mode export`") from e


def load_spec(directory: str) -> Dict[str, Any]:
  """The parsed `model.json` of an export directory (model name checked)."""
  spec_path = os.path.join(directory, MODEL_FILE)
  if not os.path.exists(spec_path):
    raise FileNotFoundError(f"No {MODEL_FILE} in {directory!r}")
  try:
    with open(spec_path) as f:
      spec = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"{spec_path}: not readable JSON ({e}); it may be "
                     "truncated or damaged: export again with "
                     "`python -m xsup.main ... --mode export`") from e
  if not isinstance(spec, dict) or spec.get("model") not in MODELS:
    got = spec.get("model") if isinstance(spec, dict) else spec
    raise ValueError(f"{spec_path}: field 'model' is {got!r}; "
                     f"expected one of {sorted(MODELS)}")
  return spec


def load_metadata(directory: str) -> Dict[str, Any]:
  """`model.json["inference"]` of an export, `{}` for older exports."""
  return dict(load_spec(directory).get("inference") or {})


def load_model(directory: str) -> Tuple[Any, Dict[str, Any]]:
  """Rebuilds `(flax module, variables)` from an export directory."""
  spec = load_spec(directory)
  module_name, cls_name = MODELS[spec["model"]]
  cls = getattr(importlib.import_module(module_name), cls_name)
  return cls(**spec.get("kwargs", {})), load_variables(directory)
