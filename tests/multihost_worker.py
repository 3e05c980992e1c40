r"""One process of a multi-process test run: `python -m xsup.main`, observed.

    python tests/multihost_worker.py --devices 2 --record R.jsonl \
        [--crash_at_step 3] -- <xsup.main arguments>

Runs the real command line (`xsup.main.run`) on `--devices` CPU devices.
It records, per global step and source, the example indices this process
read (to `--record`, one JSON line each), and with `--crash_at_step s`
dies abruptly (`os._exit`, no clean-up, like a killed process) when the
input pipeline is about to deliver the batch of (0-based) step s, once the
checkpoint written after s steps is complete on disk.
"""

import argparse
import json
import os
import sys
import time

from xla_flags_for_tests import xla_flags


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--devices", type=int, required=True)
  parser.add_argument("--record", required=True)
  parser.add_argument("--crash_at_step", type=int, default=0)
  args, rest = parser.parse_known_args()
  if rest and rest[0] == "--":
    rest = rest[1:]
  os.environ["XLA_FLAGS"] = xla_flags(args.devices)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

  from xsup import main as xsup_main  # pylint: disable=g-import-not-at-top
  from xsup.data import pipeline  # pylint: disable=g-import-not-at-top

  read = pipeline.SourceBatches.__call__

  def recording(self, step):
    indices = self.sampler.indices(step)
    with open(args.record, "a") as f:
      f.write(json.dumps({"source": self.source.description,
                          "step": int(step),
                          "indices": [int(i) for i in indices]}) + "\n")
    return read(self, step)

  pipeline.SourceBatches.__call__ = recording

  if args.crash_at_step:
    deliver = pipeline.StepIterator.__next__
    workdir = rest[rest.index("--workdir") + 1]
    done = os.path.join(workdir, "checkpoints", str(args.crash_at_step))

    def crashing(self):
      if self.next_step == args.crash_at_step:
        deadline = time.time() + 120
        while not os.path.isdir(done) and time.time() < deadline:
          time.sleep(0.1)
        time.sleep(0.5)  # Let every process see it finalised.
        os._exit(3)  # pylint: disable=protected-access
      return deliver(self)

    pipeline.StepIterator.__next__ = crashing

  sys.argv = ["xsup.main"] + rest
  xsup_main.run()


if __name__ == "__main__":
  main()
