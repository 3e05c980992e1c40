r"""Converts a torchvision ResNet checkpoint (.pth) to a numpy .npz.

The .npz keeps torchvision's key names and array layouts; the flax layout is
produced at load time by `xsup.models.pretrained.load_torchvision_resnet`.
torch is needed only here, to read the .pth file (it is not an xsup
dependency).

Usage:
  python scripts/convert_torchvision_resnet.py \
      --input resnet50-11ad3fa6.pth --output resnet50_imagenet.npz

Accepted inputs: a plain state dict (what `torchvision.models.resnet50(
weights=...).state_dict()` saves), or a dict holding it under "state_dict"
or "model"; a "module." prefix (from DataParallel) is stripped. The classifier
(`fc.*`) is kept in the file and ignored by the loader.

Then, in Python:
  variables = model.init(...)
  params, batch_stats = load_torchvision_resnet(
      "resnet50_imagenet.npz", variables["params"], variables["batch_stats"])
"""

from __future__ import annotations

import argparse
from typing import Any, Dict, Mapping, Sequence

import numpy as np

from xsup.models import pretrained


def unwrap_state_dict(checkpoint: Mapping[str, Any]) -> Mapping[str, Any]:
  """Finds the state dict inside a loaded checkpoint; strips "module."."""
  if not isinstance(checkpoint, Mapping):
    raise ValueError(f"convert_torchvision_resnet.py: expected a dict in the "
                     f"checkpoint, got {type(checkpoint).__name__}.")
  for wrapper in ("state_dict", "model"):
    if wrapper in checkpoint and isinstance(checkpoint[wrapper], Mapping):
      checkpoint = checkpoint[wrapper]
      break
  return {(k[len("module."):] if k.startswith("module.") else k): v
          for k, v in checkpoint.items()}


def to_numpy(state_dict: Mapping[str, Any]) -> Dict[str, np.ndarray]:
  """Tensors (anything with `.detach()`) or arrays -> float/int numpy arrays."""
  out = {}
  for key, value in state_dict.items():
    if hasattr(value, "detach"):
      value = value.detach().cpu().numpy()
    out[key] = np.asarray(value)
  return out


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--input", required=True,
                      help="torchvision ResNet .pth state dict")
  parser.add_argument("--output", required=True, help="output .npz path")
  args = parser.parse_args(argv)

  import torch  # pylint: disable=g-import-not-at-top

  checkpoint = torch.load(args.input, map_location="cpu", weights_only=True)
  state_dict = to_numpy(unwrap_state_dict(checkpoint))
  pretrained.write_state_dict_npz(state_dict, args.output)
  print(f"wrote {len(state_dict)} arrays to {args.output}")


if __name__ == "__main__":
  main()
