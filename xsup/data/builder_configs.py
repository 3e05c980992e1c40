"""Builder configs from `config.dataset`: a named config plus field overrides.

`config.dataset.builder_overrides` (field -> value) replaces fields of the
named builder config (`config.dataset.config`), e.g. subjects, frame counts
or a cameras file. The result gets a name derived from the overrides, so
prepared data never collides with the plain config's. Fields left at None
(declared placeholders, e.g. `cameras_file` of the Human3.6M lifting
configs) are not overrides.
"""

import dataclasses
import hashlib
import json
from typing import Any, Dict, Union

import ml_collections

from xsup.data import sources


def _override_name(base: str, overrides: Dict[str, Any]) -> str:
  digest = hashlib.sha1(json.dumps(overrides, sort_keys=True,
                                   default=str).encode()).hexdigest()[:8]
  return f"{base}_{digest}"


def resolve(data_config: ml_collections.ConfigDict) -> Union[str, Any]:
  """The builder config of `data_config`: its name, or a config object.

  Args:
    data_config: with `name` (builder), `config` (builder config name) and
      optionally `builder_overrides`.
  Returns:
    `data_config.config` when nothing is overridden, else a copy of that
    builder config with the overrides applied and a derived name.
  Raises:
    ValueError: unknown builder config or override field.
  """
  overrides = {k: v for k, v in dict(
      data_config.get("builder_overrides") or {}).items() if v is not None}
  if not overrides:
    return data_config.get("config")
  cls = sources.builder_module(data_config.name).Builder
  configs = {c.name: c for c in cls.BUILDER_CONFIGS}
  if data_config.config not in configs:
    raise ValueError(f"Dataset {data_config.name}: unknown config "
                     f"{data_config.config!r}; known: {sorted(configs)}")
  base = configs[data_config.config]
  fields = {f.name for f in dataclasses.fields(base)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ValueError(f"Dataset {data_config.name}/{data_config.config}: "
                     f"builder_overrides {unknown} are not config fields "
                     f"(fields: {sorted(fields)})")
  values = {k: tuple(v) if isinstance(v, list) else v
            for k, v in overrides.items()}
  return dataclasses.replace(base, name=_override_name(base.name, values),
                             **values)
