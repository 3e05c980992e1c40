"""Loading the repository's `configs/<file>.py` as the CLI does."""

import importlib.util
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(name: str, arg=None):
  """`configs/<name>`'s `get_config(arg)` (no argument when `arg` is empty)."""
  path = os.path.join(REPO, "configs", name)
  spec = importlib.util.spec_from_file_location(name[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()
