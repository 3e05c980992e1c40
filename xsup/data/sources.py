"""Random-access example sources: prepared TFDS splits and in-memory arrays.

Datasets are prepared once by their TFDS builder in the ArrayRecord file
format and then read by index (`tfds.data_source`), so a split larger than
memory stays on disk until its batches are read. Both kinds of source share
one interface, used by `xsup.data.pipeline`:

  len(source)               number of examples
  source.read(indices)      feature -> array, stacked over `indices`
  source.feature_shapes     feature -> per-example shape (no data read)
  source.description        what to name in messages

Sources pickle (grain workers receive them). Prepared datasets written by
older versions in the TFRecord format are converted in place on first use.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np

from xsup.data import fingerprint

Batch = Dict[str, np.ndarray]
FILE_FORMAT = "array_record"


class DataFileError(ValueError):
  """A prepared data file is missing, truncated or unreadable."""


def builder_module(name: str):
  """Imports `xsup.data.builders.<name>` (its `Builder` class is the builder)."""
  try:
    module = importlib.import_module(f"xsup.data.builders.{name}")
  except ModuleNotFoundError as e:
    here = os.path.join(os.path.dirname(__file__), "builders")
    known = sorted(
        f[:-3] for f in os.listdir(here) if f.endswith(".py")
        and "\nBuilder = " in open(os.path.join(here, f)).read())
    raise ValueError(f"Unknown dataset {name!r}; known: {known}") from e
  return module


def get_builder(name: str, builder_config: Any = None,
                data_dir: Optional[str] = None):
  """Instantiates the TFDS builder `name` (config name or config object)."""
  cls = builder_module(name).Builder
  kwargs: Dict[str, Any] = {}
  if builder_config:
    kwargs["config"] = builder_config
  if data_dir:
    kwargs["data_dir"] = os.path.expanduser(data_dir)
  return cls(**kwargs)


def prepare(name: str, builder_config: Any = None,
            data_dir: Optional[str] = None,
            manual_dir: Optional[str] = None):
  """Prepares dataset `name` (if needed) in the ArrayRecord format.

  Args:
    name: builder name (module of `xsup.data.builders`).
    builder_config: builder config name or object.
    data_dir: where prepared datasets live (TFDS default when None).
    manual_dir: directory of manually downloaded files for real datasets.
  Returns:
    The prepared builder; every shard of every split was checked to exist
    and hold the number of records its metadata states.
  """
  # Builders that read manual files are kept in step with them.
  builder = fingerprint.prepare_builder(
      get_builder(name, builder_config, data_dir), manual_dir,
      file_format=FILE_FORMAT)
  if FILE_FORMAT not in {f.value for f in
                         builder.info.available_file_formats()}:
    convert_to_array_record(builder)
    builder = get_builder(name, builder_config, data_dir)
  check_shards(builder)
  return builder


def convert_to_array_record(builder) -> None:
  """Writes ArrayRecord copies of a TFRecord-prepared dataset's shards
  (same records, same order) and points its metadata at them."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  info = builder.info
  directory = os.fspath(builder.data_dir)
  logging.warning(
      "%s in %s was prepared by an older version in the TFRecord format; "
      "writing ArrayRecord copies of its files (once). To prepare it anew "
      "instead, delete that directory.", info.full_name, directory)
  for split in info.splits.values():
    for path in split.filepaths:
      path = os.fspath(path)
      if not os.path.exists(path):
        raise DataFileError(f"{info.full_name}: shard {path} is missing. "
                            f"Delete {directory} and run again to prepare "
                            "the dataset anew.")
      head, sep, tail = os.path.basename(path).rpartition(".tfrecord-")
      if not sep:
        raise DataFileError(f"{info.full_name}: cannot convert {path}: not "
                            "a TFRecord shard name")
      out = os.path.join(directory, f"{head}.{FILE_FORMAT}-{tail}")
      writer = array_record_module.ArrayRecordWriter(out + ".tmp",
                                                     "group_size:1")
      for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        writer.write(record)
      writer.close()
      os.replace(out + ".tmp", out)
  info.set_file_format(FILE_FORMAT, override=True,
                       override_if_initialized=True)
  info.write_to_directory(directory)


def _shard_files(builder, split: Optional[str] = None
                 ) -> List[Tuple[str, int, int, int]]:
  """(path, skip, take, records in file) of the ArrayRecord shards read by
  `split` (every split when None), in reading order."""
  from tensorflow_datasets.core.data_sources import base  # pylint: disable=g-import-not-at-top
  info = builder.info
  splits = [split] if split is not None else list(info.splits)
  out = []
  for name in splits:
    for fi in base.file_instructions(info, name):
      out.append((os.fspath(fi.filename), int(fi.skip), int(fi.take),
                  int(fi.examples_in_shard)))
  return out


def check_shards(builder) -> None:
  """Raises `DataFileError` naming the first missing or damaged shard."""
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  for path, _, _, expected in _shard_files(builder):
    hint = (f"Delete {os.fspath(builder.data_dir)} and run again to prepare "
            "the dataset anew.")
    if not os.path.exists(path):
      raise DataFileError(f"{builder.info.full_name}: shard {path} is "
                          f"missing. {hint}")
    try:
      reader = array_record_module.ArrayRecordReader(path)
      found = reader.num_records()
      reader.close()
    except Exception as e:  # The reader raises several kinds on bad files.
      raise DataFileError(f"{builder.info.full_name}: shard {path} cannot be "
                          f"read ({type(e).__name__}: {e}). {hint}") from e
    if found != expected:
      raise DataFileError(f"{builder.info.full_name}: shard {path} holds "
                          f"{found} records, its metadata says {expected}. "
                          f"{hint}")


def _decode_text(values: Sequence[Any]) -> np.ndarray:
  return np.array([v.decode() if isinstance(v, bytes) else str(v)
                   for v in values])


def stack_examples(examples: Sequence[Dict[str, Any]],
                   features: Optional[Iterable[str]] = None) -> Batch:
  """Stacks decoded examples into arrays with a leading example axis.

  Text becomes `str` arrays; sequences of images `[N, V, ...]`.
  """
  keys = list(features) if features is not None else list(examples[0])
  out = {}
  for key in keys:
    values = [e[key] for e in examples]
    first = values[0]
    if isinstance(first, (bytes, str)):
      out[key] = _decode_text(values)
    elif isinstance(first, (list, tuple)):
      out[key] = np.stack([np.stack(v) for v in values])
    else:
      out[key] = np.stack([np.asarray(v) for v in values])
  return out


class TfdsSource:
  """One split of a prepared TFDS dataset, read by index from ArrayRecord.

  Decoding (JPEG/PNG images included) happens in `read`, i.e. in whichever
  process reads: the grain workers during training.
  """

  def __init__(self, builder, split: str,
               features: Optional[Sequence[str]] = None):
    """Args: a prepared builder (`prepare`), a split expression, and the
    features to return (default: all)."""
    self.description = f"{builder.info.full_name} split {split!r}"
    self.data_dir = os.fspath(builder.data_dir)
    self.features = tuple(features) if features is not None else None
    self._source = builder.as_data_source(split)
    self._shards = _shard_files(builder, split)
    self._shapes = {}
    for key, feature in builder.info.features.items():
      if self.features is None or key in self.features:
        self._shapes[key] = tuple(feature.shape)
    if not len(self._source):
      raise ValueError(f"{self.description} is empty")

  def __len__(self) -> int:
    return len(self._source)

  @property
  def feature_shapes(self) -> Dict[str, Tuple[Optional[int], ...]]:
    return dict(self._shapes)

  def files_of(self, indices: Iterable[int]) -> List[str]:
    """Shard files holding the examples `indices` of this split."""
    bounds = np.cumsum([take for _, _, take, _ in self._shards])
    shard_ids = sorted(set(np.searchsorted(bounds, list(indices),
                                           side="right").tolist()))
    return [self._shards[i][0] for i in shard_ids if i < len(self._shards)]

  def read(self, indices: Sequence[int]) -> Batch:
    """Decoded examples `indices`, stacked: feature -> `[len(indices), ...]`."""
    indices = [int(i) for i in indices]
    bad = [i for i in indices if not 0 <= i < len(self)]
    if bad:
      raise IndexError(f"{self.description}: examples {bad[:4]} out of "
                       f"range [0, {len(self)})")
    try:
      examples = self._source.__getitems__(indices)
    except Exception as e:  # The reader raises several kinds on bad files.
      raise DataFileError(
          f"{self.description}: reading examples {indices[:4]}"
          f"{'...' if len(indices) > 4 else ''} failed "
          f"({type(e).__name__}: {e}); file(s) {self.files_of(indices)}. "
          f"Delete {self.data_dir} and run again to prepare the dataset "
          "anew.") from e
    return stack_examples(examples, self.features)


class ArraySource:
  """In-memory arrays behind the source interface (small splits, tests)."""

  def __init__(self, arrays: Batch, description: str = "arrays"):
    self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
    lengths = {k: len(v) for k, v in self.arrays.items()}
    if not lengths or len(set(lengths.values())) != 1:
      raise ValueError(f"{description}: features must share their first "
                       f"axis, got lengths {lengths}")
    self.description = description
    self._len = next(iter(lengths.values()))
    if not self._len:
      raise ValueError(f"{description} is empty")

  def __len__(self) -> int:
    return self._len

  @property
  def feature_shapes(self) -> Dict[str, Tuple[Optional[int], ...]]:
    return {k: v.shape[1:] for k, v in self.arrays.items()}

  def read(self, indices: Sequence[int]) -> Batch:
    idx = np.asarray(indices, np.int64)
    return {k: v[idx] for k, v in self.arrays.items()}


def read_all(source, chunk: int = 4096) -> Batch:
  """Every example of `source` in memory (for small splits only)."""
  parts = [source.read(range(i, min(i + chunk, len(source))))
           for i in range(0, len(source), chunk)]
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def load_split(name: str, split: str, builder_config: Any = None,
               data_dir: Optional[str] = None,
               manual_dir: Optional[str] = None) -> Batch:
  """Prepares (if needed) and reads a whole split into memory.

  Only for splits that fit in memory (the lifting sets); image splits are
  streamed (`TfdsSource` + `xsup.data.pipeline`).
  """
  builder = prepare(name, builder_config, data_dir, manual_dir)
  return read_all(TfdsSource(builder, split))
