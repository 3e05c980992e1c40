"""Joining a multi-host JAX job, or knowing for sure that this is not one.

Where the settings come from, in order:
  1. the command line (`--coordinator_address`, `--num_processes`,
     `--process_id`);
  2. the environment variables `jax.distributed` reads
     (`JAX_COORDINATOR_ADDRESS`, with `JAX_NUM_PROCESSES` and
     `JAX_PROCESS_ID` read here too);
  3. a cluster `jax.distributed` detects by itself (SLURM, Open MPI, Cloud
     TPU pod slices, Kubernetes).
With none of them this is a plain single-process run. Otherwise joining must
succeed: any failure stops the run with a message naming the settings and
their source, so a host whose coordinator is unreachable never trains alone
as process 0 in a shared workdir.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from typing import Optional

from absl import logging
import jax

SINGLE = "single process"


@dataclasses.dataclass(frozen=True)
class Settings:
  """How this process joins the job.

  Attributes:
    source: "single process", "command line", "environment", "cluster
      <name>" or "disabled".
    coordinator_address: host:port of process 0 (None: from the cluster).
    num_processes: number of processes (None: from the cluster).
    process_id: this process's index (None: from the cluster).
  """
  source: str
  coordinator_address: Optional[str] = None
  num_processes: Optional[int] = None
  process_id: Optional[int] = None

  @property
  def multi_process(self) -> bool:
    return self.source not in (SINGLE, "disabled")

  def describe(self) -> str:
    if not self.multi_process:
      return self.source
    parts = [f"from the {self.source}"]
    if self.coordinator_address:
      parts.append(f"coordinator {self.coordinator_address}")
    if self.num_processes is not None:
      parts.append(f"{self.num_processes} processes")
    if self.process_id is not None:
      parts.append(f"this is process {self.process_id}")
    return ", ".join(parts)


def detected_cluster() -> Optional[str]:
  """Name of the cluster environment `jax.distributed` would use, if any."""
  try:
    from jax._src import clusters  # pylint: disable=g-import-not-at-top
    for env in clusters.ClusterEnv._cluster_types:  # pylint: disable=protected-access
      if not getattr(env, "opt_in_only_method", False) and env.is_env_present():
        return env.__name__
  except Exception as e:  # pylint: disable=broad-except
    logging.warning("Could not check for a cluster environment: %s", e)
  return None


def _int_or_none(value, name: str) -> Optional[int]:
  if value is None or value == "":
    return None
  try:
    return int(value)
  except ValueError as e:
    raise ValueError(f"{name}={value!r} must be an integer") from e


def resolve(coordinator_address: Optional[str] = None,
            num_processes: Optional[int] = None,
            process_id: Optional[int] = None,
            enabled: bool = True) -> Settings:
  """Where this run's multi-host settings come from (see the module doc)."""
  if not enabled:
    return Settings("disabled")
  if any(v is not None for v in (coordinator_address, num_processes,
                                 process_id)):
    return Settings("command line", coordinator_address, num_processes,
                    process_id)
  env = os.environ
  if env.get("JAX_COORDINATOR_ADDRESS"):
    return Settings(
        "environment", env["JAX_COORDINATOR_ADDRESS"],
        _int_or_none(env.get("JAX_NUM_PROCESSES"), "JAX_NUM_PROCESSES"),
        _int_or_none(env.get("JAX_PROCESS_ID"), "JAX_PROCESS_ID"))
  cluster = detected_cluster()
  if cluster:
    return Settings(f"cluster {cluster}")
  return Settings(SINGLE)


def _split_address(address: str):
  host, sep, port = address.rpartition(":")
  if not sep or not port.isdigit():
    raise ValueError(f"coordinator address {address!r} must be host:port")
  return host.strip("[]"), int(port)


def _wait_for_coordinator(address: str, timeout_s: float) -> None:
  host, port = _split_address(address)
  deadline = time.time() + timeout_s
  while True:
    try:
      with socket.create_connection((host, port), timeout=2.0):
        return
    except OSError as e:
      if time.time() >= deadline:
        raise ConnectionError(f"nothing answers at {address} after "
                              f"{timeout_s:.0f} s ({e})") from e
      time.sleep(0.5)


def initialize(settings: Settings, timeout_s: float = 300.0) -> None:
  """Joins the job described by `settings` (no-op for a single process).

  Raises:
    RuntimeError: joining failed; the message names the settings, their
      source and what to check.
  """
  if not settings.multi_process:
    logging.info("Single-process run (%s: no coordinator on the command "
                 "line, in JAX_COORDINATOR_ADDRESS or from a detected "
                 "cluster)", settings.source)
    return
  logging.info("Joining a multi-host job (%s); waiting up to %.0f s",
               settings.describe(), timeout_s)
  hint = ("Check --coordinator_address/--num_processes/--process_id (or "
          "the cluster's environment), that process 0 runs and is "
          "reachable, and that every process uses the same settings; "
          "--nodistributed runs a single process on purpose.")
  try:
    if settings.coordinator_address and settings.process_id not in (None, 0):
      # Fail with a readable message instead of the runtime's abort.
      _wait_for_coordinator(settings.coordinator_address, timeout_s)
    kwargs = dict(coordinator_address=settings.coordinator_address,
                  num_processes=settings.num_processes,
                  process_id=settings.process_id,
                  initialization_timeout=int(timeout_s))
    jax.distributed.initialize(**{k: v for k, v in kwargs.items()
                                  if v is not None})
  except Exception as e:  # pylint: disable=broad-except
    raise RuntimeError(f"Multi-host initialisation failed ({settings.describe()}"
                       f"): {type(e).__name__}: {e}. {hint}") from e
  logging.info("Joined: process %d of %d, %d local / %d global devices",
               jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())
