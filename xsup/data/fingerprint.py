"""A prepared dataset remembers the manual files it was made from.

TFDS prepares a dataset once (`<data_dir>/<name>/<config>/<version>/`) and
then never looks at the manual directory again: a replaced input file
would change nothing, and a deleted manual directory would go unnoticed.
`prepare_builder` wraps `builder.download_and_prepare` for every builder
that reads a manual directory:

* after preparing, it stores a fingerprint of the manual files (relative
  names, sizes, modification times and SHA-256 of the contents; files and
  folders whose names start with "." are left out) in the prepared
  directory (`FILENAME`), together with the builder's other inputs
  (`builder.extra_input_files(manual_dir)`, e.g. a cameras file);
* on every later load it compares the manual files with it: names and
  sizes first, contents only for files whose modification time moved (a
  copy with the same contents is no change); on a change it logs what
  changed, deletes that builder version's prepared directory and prepares
  it again;
* when the manual directory is gone but a prepared copy exists, it stops
  with an error naming both directories.
"""

import hashlib
import json
import os
import shutil
from typing import Any, Dict, Iterable, List, Optional

from absl import logging

FILENAME = "xsup_manual_fingerprint.json"
FORMAT_VERSION = 1
# How many changed names a message lists before "and N more".
_MAX_LISTED = 5

Fingerprint = Dict[str, Any]


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _stat(path: str, with_hash: bool) -> Dict[str, Any]:
  st = os.stat(path)
  out = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
  if with_hash:
    out["sha256"] = _sha256(path)
  return out


def list_files(manual_dir: str) -> List[str]:
  """Relative paths of the files below `manual_dir` (dot-names left out)."""
  out = []
  for folder, dirs, names in os.walk(manual_dir, followlinks=True):
    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    rel = os.path.relpath(folder, manual_dir)
    for name in sorted(names):
      if not name.startswith("."):
        out.append(os.path.normpath(os.path.join(rel, name)))
  return out


def compute(manual_dir: str, extra_files: Iterable[str] = (),
            with_hash: bool = True) -> Fingerprint:
  """The fingerprint of `manual_dir` (and `extra_files`, absolute paths).

  Returns:
    `{"format": 1, "manual_dir": abs path, "files": {relative path:
    {"size", "mtime_ns", "sha256"}}, "extra_files": {abs path: {...}}}`;
    a missing extra file is recorded as None.
  """
  manual_dir = os.path.abspath(manual_dir)
  files = {rel: _stat(os.path.join(manual_dir, rel), with_hash)
           for rel in list_files(manual_dir)}
  extra = {}
  for path in extra_files:
    path = os.path.abspath(path)
    extra[path] = (_stat(path, with_hash) if os.path.isfile(path) else None)
  return {"format": FORMAT_VERSION, "manual_dir": manual_dir, "files": files,
          "extra_files": extra}


def _same(stored: Optional[Dict[str, Any]], path: str) -> bool:
  """Whether the file at `path` still matches its `stored` record."""
  if stored is None:
    return not os.path.isfile(path)
  if not os.path.isfile(path):
    return False
  st = os.stat(path)
  if st.st_size != stored["size"]:
    return False
  if st.st_mtime_ns == stored["mtime_ns"]:
    return True
  return "sha256" in stored and _sha256(path) == stored["sha256"]


def differences(stored: Fingerprint, manual_dir: str,
                extra_files: Iterable[str] = ()) -> List[str]:
  """What changed since `stored`: e.g. `["added: a.npz", "changed: b.npz"]`.

  Empty when nothing did. Contents are hashed only for files whose size
  matches but whose modification time does not.
  """
  manual_dir = os.path.abspath(manual_dir)
  old = stored.get("files", {})
  now = set(list_files(manual_dir))
  out = [f"added: {rel}" for rel in sorted(now - set(old))]
  out += [f"removed: {rel}" for rel in sorted(set(old) - now)]
  out += [f"changed: {rel}" for rel in sorted(now & set(old))
          if not _same(old[rel], os.path.join(manual_dir, rel))]
  old_extra = stored.get("extra_files", {})
  extra = {os.path.abspath(p) for p in extra_files}
  out += [f"new input: {p}" for p in sorted(extra - set(old_extra))]
  out += [f"input no longer used: {p}"
          for p in sorted(set(old_extra) - extra)]
  out += [f"changed: {p}" for p in sorted(extra & set(old_extra))
          if not _same(old_extra[p], p)]
  return out


def summarize(changes: List[str]) -> str:
  """A one-line list of changes (the first few, then a count)."""
  shown = "; ".join(changes[:_MAX_LISTED])
  if len(changes) > _MAX_LISTED:
    shown += f"; and {len(changes) - _MAX_LISTED} more"
  return shown


def read(prepared_dir: str) -> Optional[Fingerprint]:
  """The fingerprint stored in a prepared dataset directory (None: none)."""
  path = os.path.join(prepared_dir, FILENAME)
  if not os.path.isfile(path):
    return None
  try:
    with open(path) as f:
      stored = json.load(f)
  except (OSError, ValueError):
    return None  # An unreadable record counts as no record.
  if not isinstance(stored, dict) or stored.get("format") != FORMAT_VERSION:
    return None
  return stored


def write(prepared_dir: str, fingerprint: Fingerprint) -> None:
  path = os.path.join(prepared_dir, FILENAME)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(fingerprint, f, indent=1, sort_keys=True)
  os.replace(tmp, path)


def default_manual_dir(builder) -> str:
  """TFDS's manual directory when none is given:
  `<data_dir>/downloads/manual`."""
  return os.path.join(os.fspath(builder.data_dir_root), "downloads", "manual")


def reads_manual_dir(builder) -> bool:
  """Whether the builder prepares from manually provided files."""
  return bool(getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None))


def _fresh(builder):
  """A new instance of `builder` (same class, config and data_dir)."""
  kwargs = {"data_dir": os.fspath(builder.data_dir_root)}
  if builder.builder_config is not None:
    kwargs["config"] = builder.builder_config
  return type(builder)(**kwargs)


def prepare_builder(builder, manual_dir: Optional[str] = None,
                    **prepare_kwargs):
  """`builder.download_and_prepare(...)`, kept in step with the manual files.

  Args:
    builder: a TFDS builder.
    manual_dir: the manual directory (None: TFDS's default).
    **prepare_kwargs: more arguments of `download_and_prepare` (e.g.
      `file_format`).
  Returns:
    The prepared builder, consistent with the manual files: `builder`, or
    a new instance of it when the prepared copy had to be replaced.
  Raises:
    FileNotFoundError: the manual directory is gone while a prepared copy
      exists (the message names both directories).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if not reads_manual_dir(builder):
    builder.download_and_prepare(**prepare_kwargs)
    return builder
  manual = os.path.abspath(os.path.expanduser(
      os.fspath(manual_dir) if manual_dir else default_manual_dir(builder)))
  extra_files = []
  if hasattr(builder, "extra_input_files"):
    extra_files = list(builder.extra_input_files(manual))
  prepared = os.fspath(builder.data_dir)
  if builder.is_prepared():
    stored = read(prepared)
    if not os.path.isdir(manual):
      source = stored["manual_dir"] if stored else "an unrecorded directory"
      raise FileNotFoundError(
          f"Manual directory {manual} does not exist, but the prepared "
          f"dataset {prepared} was made from the manual files in {source}. "
          "Point manual_dir (config.dataset.manual_dir) at those files; "
          f"the prepared copy is not used without them.")
    if stored is None:
      changes = ["no record of the manual files it was prepared from"]
    else:
      changes = differences(stored, manual, extra_files)
    if not changes:
      return builder
    logging.warning(
        "The manual files in %s differ from those the prepared dataset %s "
        "was made from (%s): deleting %s and preparing it again.", manual,
        prepared, summarize(changes), prepared)
    shutil.rmtree(prepared)
    builder = _fresh(builder)  # Its info was read from the deleted copy.
  record = compute(manual, extra_files)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual),
      **prepare_kwargs)
  write(prepared, record)
  return builder
