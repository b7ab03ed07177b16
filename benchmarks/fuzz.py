"""Fuzz the CLI for a while: random patient byte strings (mutations of the bundled
examples and random bytes) and random mutations of a rules folder, each run through the
installed `cledecide` in its own process. Reports any exit other than 0 or 2, any
traceback, any error that is not one line, and any run over 5 seconds.

    .venv/bin/python benchmarks/fuzz.py --minutes 5 [--seed 1]

A measurement tool, not a test: it runs until the time is up and prints a summary.
"""
from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("cledecide"))
SLOW_S = 5.0
TOKENS = [b".nan", b".inf", b"017", b"0x1f", b"1:30", b"yes", b"~", b"!!binary aGk=",
          b"\x1b]0;t\x07", b"\xe2\x80\xae", b"1e400", b"-1", b"99999999999999999999",
          b"[", b"{", b"&a [*a]", b"*a", b"'", b'"', b"\n  ", b"\t", b"\x00", b"\xff",
          b"2026-02-30", b"0", b"", b"not ", b"all: [", b"- ", b": "]


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        choice = rng.random()
        pos = rng.randint(0, len(out)) if out else 0
        if choice < 0.4:
            out[pos:pos] = rng.choice(TOKENS)
        elif choice < 0.7 and out:
            end = min(len(out), pos + rng.randint(1, 12))
            out[pos:end] = rng.choice(TOKENS)
        elif choice < 0.85 and out:
            del out[pos:pos + rng.randint(1, 20)]
        else:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(out)


def check(proc: subprocess.CompletedProcess, seconds: float, label: str,
          problems: list[str]) -> None:
    err = proc.stderr.decode("utf-8", "replace")
    bad = []
    if proc.returncode not in (0, 2):
        bad.append(f"exit {proc.returncode}")
    if "Traceback" in err:
        bad.append("traceback")
    if proc.returncode == 2 and len(err.strip().splitlines()) != 1:
        bad.append("error not one line")
    if seconds > SLOW_S:
        bad.append(f"slow ({seconds:.1f} s)")
    if bad:
        problems.append(f"{label}: {', '.join(bad)}: {err.strip()[:200]}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    examples = [p.read_bytes() for p in sorted((ROOT / "examples").glob("*.yaml"))
                if p.name != "expected.yaml"]
    rule_files = sorted((ROOT / "rules").glob("*.yaml"))
    deadline = time.monotonic() + args.minutes * 60
    problems: list[str] = []
    runs = {"patient": 0, "rules": 0}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        patient = work / "p.yaml"
        while time.monotonic() < deadline:
            if rng.random() < 0.7:
                data = mutate(rng.choice(examples), rng) if rng.random() < 0.9 else \
                    bytes(rng.randrange(256) for _ in range(rng.randint(0, 400)))
                patient.write_bytes(data)
                argv = ["evaluate", str(patient), "--format", "json"]
                kind = "patient"
            else:
                folder = work / "rules"
                shutil.rmtree(folder, ignore_errors=True)
                shutil.copytree(ROOT / "rules", folder)
                target = folder / rng.choice(rule_files).name
                target.write_bytes(mutate(target.read_bytes(), rng))
                patient.write_bytes(rng.choice(examples))
                argv = ["evaluate", str(patient), "--rules", str(folder)]
                kind = "rules"
            started = time.monotonic()
            try:
                proc = subprocess.run([CLI, *argv], capture_output=True, timeout=60)
            except subprocess.TimeoutExpired:
                problems.append(f"{kind} run {runs[kind]}: hang (over 60 s)")
                continue
            runs[kind] += 1
            check(proc, time.monotonic() - started, f"{kind} run {runs[kind]}", problems)
    print(f"fuzz: {runs['patient']} patient runs, {runs['rules']} rule-folder runs, "
          f"{len(problems)} problems")
    for line in problems[:50]:
        print("  " + line)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
