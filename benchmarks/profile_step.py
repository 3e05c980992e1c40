r"""Per-op time profile of one training step (jax.profiler trace).

Builds the step of a workload exactly as the throughput benchmarks do,
compiles it, runs warm-up steps, then traces `--steps` steps with
`jax.profiler` and sums, per XLA op of the compiled program, the time its
thunks ran, plus the idle time after an asynchronous thunk until the next
op starts (`op_times`). Each op is classified from the optimised HLO (the
heaviest instruction inside a fusion: convolution, dot, reduce, ...;
backward ops are those whose source is a `transpose(...)` of the JAX
program, i.e. the VJP) and attributed to the model part in its source
location.

Workloads: `teacher`, `student` (lifting, batch `--batch`, default 128),
`xsup:<preset>` (the S2 step of `xsup_throughput.py`, batch `--batch`,
default 8, `--views` 4).

    python benchmarks/profile_step.py --workload student [--steps 3] \
        [--top 15] [--dtype float32] [--depth_dim 32] [--json out.json]

Prints the top ops and the shares per category and per model part; with
`--json`, writes them. Durations on a loaded machine are noisy: compare
shares, not absolute times.
"""

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time
from typing import Dict, List, Tuple

import jax

import lifting_throughput
import xsup_throughput

# Heavy instruction kinds, most expensive first (a fusion is named after
# the first of them it contains).
_HEAVY = ("convolution", "dot", "custom-call", "reduce-window",
          "select-and-scatter", "scatter", "gather", "sort", "reduce",
          "transpose", "pad", "concatenate", "dynamic-update-slice",
          "copy")
_INSTR = re.compile(r"^\s*(?:ROOT\s+)?(%?[\w.\-]+)\s*=\s*.*?\s([a-z\-]+)\(")
_CALLS = re.compile(r"calls=(%?[\w.\-]+)")
_OPNAME = re.compile(r'op_name="([^"]*)"')
_COMP = re.compile(r"^(?:ENTRY\s+)?(%?[\w.\-]+)\s.*\{\s*$")


def parse_hlo(text: str) -> Dict[str, Dict[str, str]]:
  """Instruction name -> {"opcode", "kind", "op_name", "detail"} of an HLO
  module (for a fusion: its heaviest instruction; detail = its text)."""
  comps: Dict[str, List[Tuple[str, str, str, str, str]]] = {}
  current = None
  for line in text.splitlines():
    m = _COMP.match(line)
    if m and "=" not in line.split("{")[0]:
      current = m.group(1).lstrip("%")
      comps[current] = []
      continue
    m = _INSTR.match(line)
    if m and current is not None:
      calls = _CALLS.search(line)
      op_name = _OPNAME.search(line)
      detail = line.split("=", 1)[1].split(", metadata=")[0].strip()
      comps[current].append((m.group(1).lstrip("%"), m.group(2),
                             calls.group(1).lstrip("%") if calls else "",
                             op_name.group(1) if op_name else "", detail))

  def rank(opcode: str) -> int:
    return _HEAVY.index(opcode) if opcode in _HEAVY else len(_HEAVY)

  def heavy(comp: str, depth: int = 0) -> Tuple[str, str, str]:
    """(heaviest opcode, its op_name, its text) inside a computation."""
    found = []
    for _, opcode, calls, op_name, detail in comps.get(comp, []):
      if calls and depth < 3:
        found.append(heavy(calls, depth + 1))
      if opcode in _HEAVY:
        found.append((opcode, op_name, detail))
    if not found:
      return "elementwise", "", ""
    return min(found, key=lambda f: rank(f[0]))

  info = {}
  for instrs in comps.values():
    for name, opcode, calls, op_name, detail in instrs:
      kind, inner_name, inner = opcode, op_name, detail
      if opcode == "fusion" and calls:
        kind, inner_name, inner = heavy(calls)
        if kind == "elementwise":
          inner_name, inner = op_name, detail
      window = re.search(r"window=\{size=(\d+)x(\d+)", inner)
      if kind == "convolution" and window and min(
          int(window.group(1)), int(window.group(2))) >= 8:
        # A window as large as the image: XLA's form of a kernel gradient.
        kind = "conv kernel-grad"
      info[name] = {"opcode": opcode, "kind": kind,
                    "op_name": inner_name or op_name, "detail": inner[:160]}
  return info


def model_part(op_name: str) -> str:
  """Coarse model part from a JAX source op_name (flax module path)."""
  for pattern, part in (
      (r"backbone", "backbone"), (r"head/deconv", "head deconv"),
      (r"head/final", "head 1x1"), (r"integral|softmax", "integral"),
      (r"physique|PhysiqueNet", "physique"),
      (r"render|segment_squared|_link_heat", "renderer"),
      (r"discriminator|Discriminator|SAGE|GCN|disc_", "discriminator"),
      (r"non_local|NonLocal", "non-local"), (r"gconv|SemGraph|output",
                                             "graph conv"),
      (r"trunk|Bottleneck|DenseBN|Dense_", "teacher trunk"),
      (r"adam|sgd|optax|apply_updates", "optimizer")):
    if re.search(pattern, op_name):
      return part
  return "other"


def direction(op_name: str, kind: str = "") -> str:
  if "transpose(" in op_name or kind == "conv kernel-grad":
    return "backward"
  return "forward"


def build(workload: str, batch: int, views: int, dtype: str,
          depth_dim: int = 0):
  if workload in ("teacher", "student"):
    step, args, _ = lifting_throughput.build_train_step(
        workload, batch or 128, dtype)
    return step, args
  if workload.startswith("xsup:"):
    step, args, _ = xsup_throughput.build_step(
        workload.split(":", 1)[1], batch or 8, views, dtype,
        depth_dim=depth_dim)
    return step, args
  raise ValueError(f"Unknown workload {workload!r}; known: teacher, student, "
                   f"xsup:<{'|'.join(sorted(xsup_throughput.PRESETS))}>")


def trace_events(logdir: str) -> List[dict]:
  paths = glob.glob(os.path.join(logdir, "plugins", "profile", "*",
                                 "*.trace.json.gz"))
  if not paths:
    raise FileNotFoundError(f"No trace under {logdir}")
  with gzip.open(sorted(paths)[-1]) as f:
    return json.load(f)["traceEvents"]


def op_times(events: List[dict], module: str, steps: int) -> Dict[str, float]:
  """Microseconds per step of each op of `module`, own time plus async tail.

  XLA:CPU runs some thunks (convolutions, large reductions, scatters)
  asynchronously: the traced event ends when the work is handed to the
  intra-op thread pool, and no op event covers the time until it finishes.
  Any interval in which no op of the module is running is charged to the
  op that was dispatched last before it. That is the op whose work fills it
  when the program runs one op at a time; when the executor runs two
  independent ops at once, a small op dispatched after a large asynchronous
  one can be charged the large one's tail. The total is right either way;
  for a part's share of the S2 step, time the step with that part switched
  off (`xsup_throughput.py --zero_loss`).
  """
  ops = []
  for e in events:
    args_ = e.get("args") or {}
    if e.get("ph") == "X" and args_.get("hlo_module") == module:
      ops.append((e["ts"], e.get("dur", 0.0), args_.get("hlo_op", e["name"])))
  ops.sort()
  per_op = collections.Counter()
  busy_until, last = None, None
  for start, dur, name in ops:
    if last is not None and start > busy_until:
      per_op[last] += (start - busy_until) / steps
    per_op[name] += dur / steps
    if busy_until is None or start + dur >= busy_until:
      busy_until, last = start + dur, name
  return per_op


def profile(workload: str, batch: int, views: int, steps: int, dtype: str,
            warmup: int = 2, depth_dim: int = 0) -> dict:
  """Per-op totals of `steps` traced steps of `workload`."""
  step, args = build(workload, batch, views, dtype, depth_dim)
  compiled = step.lower(*args).compile()
  hlo = parse_hlo(compiled.as_text())
  module = compiled.as_text().split("\n", 1)[0].split()[1].rstrip(",")
  state, rest = args[0], args[1:]
  for _ in range(warmup):  # The first call also pays the tracing.
    state, metrics = step(state, *rest)
  jax.block_until_ready(metrics)
  logdir = tempfile.mkdtemp(prefix="xsup_profile_")
  start = time.perf_counter()
  with jax.profiler.trace(logdir):
    for _ in range(steps):
      state, metrics = step(state, *rest)
    jax.block_until_ready(metrics)
  wall = (time.perf_counter() - start) / steps
  per_op = op_times(trace_events(logdir), module, steps)
  total = sum(per_op.values()) or 1.0
  rows = []
  for op, us in per_op.most_common():
    meta = hlo.get(op, {"kind": "?", "op_name": ""})
    rows.append({"op": op, "ms": us / 1e3, "share": us / total,
                 "kind": meta["kind"],
                 "dir": direction(meta["op_name"], meta["kind"]),
                 "part": model_part(meta["op_name"]),
                 "source": meta["op_name"][-90:],
                 "detail": meta.get("detail", "")})
  by = {}
  for key in ("kind", "part", "dir"):
    acc = collections.Counter()
    for r in rows:
      label = r[key] if key != "kind" else f"{r['kind']} ({r['dir']})"
      acc[label] += r["share"]
    by[key] = dict(acc.most_common())
  return {"workload": workload, "dtype": dtype, "steps": steps,
          "wall_ms_per_step": wall * 1e3, "op_ms_per_step": total / 1e3,
          "top_ops": rows, "by_kind": by["kind"], "by_part": by["part"],
          "by_direction": by["dir"]}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workload", required=True)
  parser.add_argument("--batch", type=int, default=0,
                      help="default 128 (lifting) or 8 (xsup)")
  parser.add_argument("--views", type=int, default=4)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--dtype", default="float32",
                      choices=["float32", "bfloat16"])
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--depth_dim", type=int, default=0,
                      help="xsup workloads: depth bins (0: the preset's)")
  parser.add_argument("--top", type=int, default=15)
  parser.add_argument("--detail", action="store_true",
                      help="print each top op's HLO instruction")
  parser.add_argument("--json", default=None)
  args = parser.parse_args(argv)
  result = profile(args.workload, args.batch, args.views, args.steps,
                   args.dtype, args.warmup, args.depth_dim)
  print(f"{result['workload']} ({result['dtype']}): "
        f"{result['wall_ms_per_step']:.1f} ms/step wall, "
        f"{result['op_ms_per_step']:.1f} ms of op time per step")
  print(f"{'share':>6} {'ms':>9}  {'kind':<18} {'dir':<8} {'part':<14} op")
  for r in result["top_ops"][:args.top]:
    print(f"{r['share']:>6.1%} {r['ms']:>9.2f}  {r['kind']:<18} "
          f"{r['dir']:<8} {r['part']:<14} {r['op']}  [{r['source']}]")
    if args.detail:
      print(f"{'':>18}{r['detail']}")
  for key in ("by_kind", "by_part", "by_direction"):
    print(key.replace("_", " ") + ": " + ", ".join(
        f"{k} {v:.1%}" for k, v in list(result[key].items())[:10]))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=1)
  return result


if __name__ == "__main__":
  main(sys.argv[1:])
