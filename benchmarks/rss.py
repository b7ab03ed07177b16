"""Memory of a streamed cohort run (a measurement, never a test assertion).

    .venv/bin/python benchmarks/rss.py --patients 1000000 [--jobs 2] [--file big.jsonl]

Writes N synthetic records (reviewer/space.py, never clinical data) to a JSON Lines
file once, runs `cledecide evaluate FILE --format csv --jobs J` on it, and samples the
resident memory of the whole process tree (parent and workers, from /proc) every
second. Prints RSS after 10,000 patients, the peak over the run, and the rate.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from cledecide import default_rules_dir, load_ruleset
from cledecide.reviewer.space import random_patient


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1024


def write_records(path: Path, n: int) -> None:
    thresholds = load_ruleset(default_rules_dir()).thresholds
    rng = random.Random(20261126)
    with path.open("w") as out:
        for i in range(n):
            out.write(json.dumps(random_patient(rng, thresholds, i), default=str) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--file", type=Path, default=None)
    args = parser.parse_args()
    path = args.file or Path(f"/tmp/cledecide-cohort-{args.patients}.jsonl")
    if not path.exists() or sum(1 for _ in path.open()) != args.patients:
        started = time.perf_counter()
        write_records(path, args.patients)
        print(f"wrote {args.patients} records to {path} in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    out = path.with_suffix(".csv")
    cli = Path(sys.executable).parent / "cledecide"
    started = time.perf_counter()
    with out.open("wb") as sink:
        proc = subprocess.Popen([str(cli), "evaluate", str(path), "--format", "csv",
                                 "--jobs", str(args.jobs)], stdout=sink,
                                stderr=subprocess.DEVNULL)
        peak, at_10k, samples = 0.0, None, []
        while proc.poll() is None:
            rss = tree_rss_mb(proc.pid)
            size = out.stat().st_size
            rows = size / 110  # CSV rows are ~110 bytes; refined below
            samples.append((time.perf_counter() - started, rows, rss))
            peak = max(peak, rss)
            if at_10k is None and rows >= 10_000:
                at_10k = rss
            time.sleep(1)
    wall = time.perf_counter() - started
    rows = sum(1 for _ in out.open()) - 1
    bytes_per_row = out.stat().st_size / max(rows, 1)
    if at_10k is None:
        at_10k = samples[-1][2] if samples else 0.0
    else:  # the 10k sample, with the real row size
        at_10k = next((s[2] for s in samples if s[1] * 110 / bytes_per_row >= 10_000), at_10k)
    late = [s[2] for s in samples if s[0] > wall * 0.9]
    print(f"{rows} patients evaluated in {wall:.0f} s ({rows / wall:.0f}/s, --jobs "
          f"{args.jobs}); process tree RSS after 10,000: {at_10k:.0f} MB; in the last "
          f"10% of the run: {max(late) if late else 0:.0f} MB; peak {peak:.0f} MB; exit "
          f"{proc.returncode}")


if __name__ == "__main__":
    main()
