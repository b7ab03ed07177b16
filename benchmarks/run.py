"""Benchmarks (measurements, never test assertions): cold start, throughput, memory.

    .venv/bin/python benchmarks/run.py [--patients 3000] [--markdown]

Prints one table; --markdown also writes it into docs/performance.md (between its
`measured` markers, with the date and the machine), where the notes on it live.
"""
from __future__ import annotations

import argparse
import gc
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import random

from cledecide import default_rules_dir, evaluate_patient, load_ruleset
from cledecide.engine import conditions as C
from cledecide.engine.compile import compile_rules
from cledecide.engine.evaluate import evaluate
from cledecide.engine.facts import patient_facts
from cledecide.engine.models import Patient
from cledecide.cohort.stream import settle
from cledecide.reviewer.reference import ClosureRules
from cledecide.reviewer.space import random_patient

ROOT = Path(__file__).resolve().parent.parent


def patients(n: int, thresholds: dict[str, float], seed: int = 1) -> list[dict]:
    """The synthetic records `rules check` searches (reviewer/space.py), never clinical data."""
    rng = random.Random(seed)
    return [random_patient(rng, thresholds, i) for i in range(n)]

BIN = Path(sys.executable).parent


def timed(cmd: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


# A Typer command that does nothing: typer 0.29 validates each parameter through a
# pydantic TypeAdapter, so this is what any command with an argument costs at least.
TINY_TYPER = """
import typer, yaml, durable.lang
app = typer.Typer()
@app.command()
def evaluate(paths: list[str], fmt: str = typer.Option("text", "--format")) -> None:
    pass
@app.command()
def other() -> None:
    pass
app()
"""


def cold_start(runs: int = 12) -> dict[str, float]:
    """Medians of interleaved runs (this machine drifts): the import floor, what pydantic
    and an empty Typer command add to it, and cledecide with and without its caches."""
    import os
    example = str(ROOT / "examples" / "refractory-neuropathy.yaml")
    evaluate_cmd = [str(BIN / "cledecide"), "evaluate", example, "--format", "json"]
    subprocess.run(evaluate_cmd, check=True, capture_output=True)  # fill the caches
    rows = {
        "import typer+yaml+durable.lang (floor)":
            ([sys.executable, "-c", "import typer, yaml, durable.lang"], None),
        "  + import pydantic.main": (
            [sys.executable, "-c", "import typer, yaml, durable.lang, pydantic.main"], None),
        "empty Typer command (list[str] argument, one option)":
            ([sys.executable, "-c", TINY_TYPER, "evaluate", "x", "--format", "json"], None),
        "cledecide evaluate (rule-set cache)": (evaluate_cmd, None),
        "cledecide evaluate, CLEDECIDE_NO_CACHE=1":
            (evaluate_cmd, dict(os.environ, CLEDECIDE_NO_CACHE="1")),
    }
    samples: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(runs):
        for name, (cmd, env) in rows.items():
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            samples[name].append(time.perf_counter() - t)
    return {name: statistics.median(s) for name, s in samples.items()}


def plain_python(ruleset, facts_list) -> float:
    """The same rule conditions, evaluated by a plain Python loop with forward chaining."""
    rules = ruleset.rules
    t = time.perf_counter()
    for facts in facts_list:
        derived: set[str] = set()
        fired: set[str] = set()
        changed = True
        while changed:
            changed = False
            for rule in rules:
                if rule.id in fired:
                    continue
                if C.truth(rule.normal, facts, derived) is True:
                    fired.add(rule.id)
                    then = rule.spec.then
                    new = [then.derive] if then.derive else []
                    if then.recommend and then.recommend.drug:
                        new.append(f"{then.recommend.drug}_considered")
                    for name in new:
                        if name not in derived:
                            derived.add(name)
                            changed = True
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=3000)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--markdown", action="store_true",
                        help="write the table into docs/performance.md")
    args = parser.parse_args()
    n = args.patients

    cold = cold_start()
    ruleset = load_ruleset(default_rules_dir())
    compiled = compile_rules(ruleset)
    models = [Patient.model_validate(p) for p in patients(n, ruleset.thresholds)]
    facts_list = [patient_facts(m, ruleset) for m in models]
    settle()  # as the cohort runner and the service do once the rules are loaded

    for m in models[:50]:  # warm up
        evaluate_patient(m, ruleset)
    # Three interleaved rounds, medians: this machine's speed drifts by +-10% within a
    # minute, which a single pass would turn into the ratios' noise.
    rounds: list[tuple[float, float, float]] = []
    firings = 0
    for _ in range(3):
        t = time.perf_counter()
        firings = 0
        for facts in facts_list:
            fired, _ = compiled.run(facts)
            firings += len(fired)
        engine_round = time.perf_counter() - t
        t = time.perf_counter()
        for m in models:
            evaluate(m, compiled)
        evaluate_round = time.perf_counter() - t
        t = time.perf_counter()
        for m in models:
            evaluate_patient(m, ruleset)
        rounds.append((engine_round, evaluate_round, time.perf_counter() - t))
    engine_s, evaluate_s, full_s = (statistics.median(r[i] for r in rounds) for i in range(3))
    pipeline_ratio = statistics.median(r[0] / r[2] for r in rounds)
    plain_s = plain_python(ruleset, facts_list)
    closures = ClosureRules(ruleset)
    t = time.perf_counter()
    for facts in facts_list:
        closures.run(facts)
    closure_s = time.perf_counter() - t

    print(f"rules: {len(ruleset.rules)} active; {firings / n:.1f} firings per patient")
    floor = next(iter(cold.values()))
    table = [("rules", f"{len(ruleset.rules)} active; {firings / n:.1f} firings per patient")]
    print("cold start (medians of 12 interleaved runs; ratio to the import floor, goal <= 2.0x):")
    for name, seconds in cold.items():
        print(f"  {name:54s} {seconds * 1000:5.0f} ms {seconds / floor:5.2f}x")
        table.append((f"cold start: {name}", f"{seconds * 1000:.0f} ms ({seconds / floor:.2f}x)"))
    print(f"throughput over {n} patients (one core; medians of 3 interleaved rounds):")
    print(f"  durable_rules run only        {n / engine_s:8.0f} patients/s")
    print(f"  evaluate stage (facts+run)    {n / evaluate_s:8.0f} patients/s")
    print(f"  full pipeline to Result       {n / full_s:8.0f} patients/s")
    print(f"  plain-Python loop, same rules {n / plain_s:8.0f} patients/s "
          f"(durable run / plain = {plain_s / engine_s:.2f})")
    print(f"  reference: the same conditions compiled to Python closures, forward-chained "
          f"{n / closure_s:8.0f} patients/s")
    print(f"ratios: full pipeline / durable run = {pipeline_ratio:.2f} (goal >= 0.5); "
          f"durable run / closures = {closure_s / engine_s:.2f} (goal >= 0.15)")
    table += [("durable_rules run only", f"{n / engine_s:.0f} patients/s"),
              ("evaluate stage (facts + run)", f"{n / evaluate_s:.0f} patients/s"),
              ("full pipeline to the Result", f"{n / full_s:.0f} patients/s "
               f"({pipeline_ratio:.2f}x the durable_rules-only rate; goal 0.5x)"),
              ("plain-Python loop, same rules", f"{n / plain_s:.0f} patients/s"),
              ("reference: conditions compiled to Python closures",
               f"{n / closure_s:.0f} patients/s (durable_rules reaches "
               f"{closure_s / engine_s:.2f}x of it; goal 0.15x)")]

    if not args.skip_memory:
        gc.collect()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        many = [Patient.model_validate(p) for p in patients(10 * n, ruleset.thresholds, seed=2)]
        gc.collect()
        rss_models = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for i, m in enumerate(many):
            evaluate_patient(m, ruleset)
            if i == n:
                rss_at_n = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"peak RSS: {rss_before / 1024:.0f} MB before; {rss_models / 1024:.0f} MB with "
              f"{10 * n} patient models held; {rss_at_n / 1024:.0f} MB after {n} evaluations; "
              f"{rss_after / 1024:.0f} MB after {10 * n} evaluations "
              f"(growth over the last {9 * n}: {(rss_after - rss_at_n) / 1024:.1f} MB)")
        table.append(("memory (peak RSS)", f"{rss_at_n / 1024:.0f} MB after {n} evaluations, "
                      f"{rss_after / 1024:.0f} MB after {10 * n}"))
    if args.markdown:
        write_markdown(table, n)


def write_markdown(table: list[tuple[str, str]], n: int) -> None:
    """The table into docs/performance.md, between `<!-- measured:start -->` and
    `<!-- measured:end -->`; the prose around it is kept."""
    import datetime as dt
    import os
    import platform
    doc = ROOT / "docs" / "performance.md"
    start, end = "<!-- measured:start -->", "<!-- measured:end -->"
    body = doc.read_text()
    head, rest = body.split(start, 1)
    lines = [f"Measured {dt.date.today()} by `benchmarks/run.py --markdown` ({n} "
             f"synthetic patients; Python {platform.python_version()}, "
             f"{os.cpu_count()} cores):", "", "| measure | result |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in table]
    doc.write_text(head + start + "\n" + "\n".join(lines) + "\n" + end
                   + rest.split(end, 1)[1])
    print(f"written into {doc}")


if __name__ == "__main__":
    main()
