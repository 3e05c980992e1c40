"""The benchmark scripts' own logic: profile attribution, step switches."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..",
                                "benchmarks"))

import profile_step  # noqa: E402  pylint: disable=g-import-not-at-top
import xsup_throughput  # noqa: E402  pylint: disable=g-import-not-at-top


def _event(name, start, dur, module="step"):
  return {"ph": "X", "ts": start, "dur": dur, "name": name,
          "args": {"hlo_module": module, "hlo_op": name}}


def test_op_times_charges_idle_time_to_the_last_dispatched_op():
  events = [
      _event("conv", 0.0, 1.0),       # Dispatched; runs until t = 9.
      _event("add", 9.0, 2.0),        # Starts when the conv's work ends.
      _event("other", 3.0, 50.0, module="another program"),
      _event("reduce", 11.0, 4.0),    # Back to back: no idle time.
      _event("scatter", 20.0, 1.0),   # 5 idle units before it.
      {"ph": "M", "name": "thread_name"},
  ]
  times = profile_step.op_times(events, "step", steps=2)
  assert times == {"conv": 4.5, "add": 1.0, "reduce": 4.5, "scatter": 0.5}
  # The total is the span from the first op's start to the last op's end.
  assert sum(times.values()) * 2 == 21.0


def test_op_times_overlapping_ops_count_their_own_time():
  events = [_event("a", 0.0, 10.0), _event("b", 2.0, 3.0),
            _event("c", 12.0, 1.0)]
  times = profile_step.op_times(events, "step", steps=1)
  # "b" ends inside "a": the idle gap after "a" (10 -> 12) goes to "a".
  assert times == {"a": 12.0, "b": 3.0, "c": 1.0}


def test_zero_loss_rejects_an_unknown_term():
  with pytest.raises(ValueError, match=r"--zero_loss 'body': not a loss "
                     r"term; known: synthetic, mask, physique"):
    xsup_throughput.build_step("demo_64", 2, 2, zero_loss=("body",))


def test_host_cost_counts_first_touch_page_faults():
  import mmap  # pylint: disable=g-import-not-at-top
  import bench_util  # pylint: disable=g-import-not-at-top
  size, page = 64 * 2**20, mmap.PAGESIZE
  with bench_util.HostCost() as idle:
    pass
  with bench_util.HostCost() as touching:
    for _ in range(2):  # Fresh 64 MB, one byte written per page.
      with mmap.mmap(-1, size) as block:
        for offset in range(0, size, page):
          block[offset] = 1
  assert idle.per_call(1)["page_faults_mb"] < 8
  cost = touching.per_call(2)
  assert cost["page_faults_mb"] >= 48, cost
  assert cost["kernel_cpu_s"] > 0.0, cost
