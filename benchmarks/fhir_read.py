"""FHIR read cost (measurements, never test assertions): a Synthea-shaped bundle of
about 3 MB and 10 MB (pretty-printed, as Synthea writes them), from bytes to validated
patient records, rules and code map loaded once.

    .venv/bin/python benchmarks/fhir_read.py [--sizes 3,10] [--runs 5]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from synthea_like import sized  # noqa: E402

from cledecide import default_rules_dir, patients_of  # noqa: E402
from cledecide.engine.load import parse  # noqa: E402
from cledecide.fhir_r4.codemap import load_codemap  # noqa: E402


def read(raw: bytes) -> int:
    (patient, _), = patients_of(parse(raw, "bundle.json"), default_rules_dir())
    return len(patient.treatments)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="3,10", help="MB, comma-separated")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    load_codemap(default_rules_dir())
    print(f"{'bundle':>10} {'entries':>8} {'parse':>9} {'read (median)':>14} {'min':>8}")
    for mb in (float(s) for s in args.sizes.split(",")):
        made = sized(int(mb * 1_000_000), hcq="product", hcq_dose="tab")
        raw = json.dumps(made.bundle, indent=2).encode()
        read(raw)  # warm: models and their validators built once per process
        parse_s, read_s = [], []
        for _ in range(args.runs):
            t = time.perf_counter()
            parse(raw, "bundle.json")
            parse_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            read(raw)
            read_s.append(time.perf_counter() - t)
        print(f"{len(raw) / 1e6:>8.1f}MB {len(made.bundle['entry']):>8} "
              f"{statistics.median(parse_s):>8.3f}s {statistics.median(read_s):>13.3f}s "
              f"{min(read_s):>7.3f}s")


if __name__ == "__main__":
    main()
