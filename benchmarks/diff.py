"""How long `cledecide rules diff` takes (a measurement, never a test assertion).

    .venv/bin/python benchmarks/diff.py [--patients 62] [--runs 5] [--cledecide PATH]

The reviewer's case of issue 24: the shipped rules against a copy whose hydroxychloroquine
limit is 6 mg/kg instead of 5, with the shipped scenarios (the default), the examples
(--examples) and a cohort of N synthetic patients (reviewer/space.py, seeded; never
clinical data) as JSON Lines. Each row is the median of interleaved runs of the CLI as a
reviewer runs it, wall and CPU seconds (user + system of the child): the same folders
again, a new edit against the same "before" folder, and with a fresh, empty cache
folder. --cledecide times another install (an older
checkout's .venv/bin/cledecide) on the same folders. --profile prints where the time
of one in-process diff goes instead.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def setup(folder: Path, n: int, given: str | None) -> tuple[Path, Path, Path]:
    """The edited copy of the rules and an N-patient cohort (or the one given)."""
    from cledecide.engine.rulecache import load_ruleset
    from cledecide.reviewer.space import random_patient
    new = folder / "rules"
    shutil.copytree(ROOT / "rules", new)
    edited(new, "6.0")
    if given:
        return ROOT / "rules", new, Path(given)
    thresholds = load_ruleset(ROOT / "rules").thresholds
    rng = random.Random(24)
    cohort = folder / "cohort.jsonl"
    cohort.write_text("".join(json.dumps(random_patient(rng, thresholds, i), default=str)
                              + "\n" for i in range(n)))
    return ROOT / "rules", new, cohort


def timed(cmd: list[str], env: dict[str, str] | None) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def edited(folder: Path, value: str) -> None:
    """The hydroxychloroquine limit of a rules copy set to `value` mg/kg."""
    path = folder / "drugs.yaml"
    text = path.read_text()
    start = text.index("\n  hydroxychloroquine:\n")
    at = text.index("mg_per_kg_per_day: ", start)
    end = text.index("\n", at)
    path.write_text(text[:at] + f"mg_per_kg_per_day: {value}" + text[end:])


def measure(cledecide: str, old: Path, new: Path, cohort: Path, runs: int,
            folder: Path) -> dict[str, tuple[float, float]]:
    """Three ways a reviewer meets the diff: the same two folders again (every advice
    in the cache), a new edit against the same "before" folder (the before folder's
    advice in the cache: the edit loop), and a fresh cache folder (the first run)."""
    loop = folder / "loop"
    shutil.copytree(new, loop)
    extra = ["--examples", str(ROOT / "examples")]
    rows = {
        "scenarios": [],
        "scenarios + examples": extra,
        "scenarios + examples + cohort": extra + ["--patients", str(cohort)],
    }
    samples: dict[str, list[tuple[float, float]]] = {}
    count = 0
    for _ in range(runs):
        for name, options in rows.items():
            count += 1
            cmd = [cledecide, "rules", "diff", str(old), str(new), *options]
            samples.setdefault(f"{name}, the same folders again", []).append(
                timed(cmd, None))
            edited(loop, f"{6 + count / 100:.2f}")
            cmd_loop = [cledecide, "rules", "diff", str(old), str(loop), *options]
            samples.setdefault(f"{name}, a new edit (the loop)", []).append(
                timed(cmd_loop, None))
            cold = dict(os.environ, XDG_CACHE_HOME=str(folder / f"cache-{count}"))
            samples.setdefault(f"{name}, empty cache", []).append(timed(cmd, cold))
    return {name: (statistics.median(w for w, _ in s), statistics.median(c for _, c in s))
            for name, s in samples.items()}


def profile(old: Path, new: Path, cohort: Path) -> None:
    import cProfile
    import pstats
    from cledecide.reviewer.diff import diff
    cProfile.runctx("diff(old, new, None, ROOT / 'examples', [str(cohort)])",
                    globals(), {"diff": diff, "old": old, "new": new, "cohort": cohort,
                                "ROOT": ROOT}, str(cohort) + ".prof")
    pstats.Stats(str(cohort) + ".prof").sort_stats("cumulative").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=62)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cledecide", default=str(BIN / "cledecide"))
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--cohort", help="a JSON Lines cohort instead of the synthetic one "
                        "(to time two checkouts on the same patients)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cledecide-diff-bench-") as tmp:
        old, new, cohort = setup(Path(tmp), args.patients, args.cohort)
        if args.profile:
            profile(old, new, cohort)
            return
        size = sum(1 for _ in cohort.open())
        print(f"rules diff, shipped rules vs hydroxychloroquine 6 mg/kg; cohort "
              f"{size} patients ({cohort.name}); {args.runs} runs, medians; load "
              f"average {os.getloadavg()[0]:.1f}; {args.cledecide}")
        for name, (wall, cpu) in measure(args.cledecide, old, new, cohort, args.runs,
                                         Path(tmp)).items():
            print(f"  {name:<56} {wall:6.2f} s wall  {cpu:6.2f} CPU-s")


if __name__ == "__main__":
    main()
