"""Load benchmark of the CDS Hooks service (a measurement, never a test assertion).

    .venv/bin/python benchmarks/service.py [--requests 400]

Starts `cledecide serve` on a free 127.0.0.1 port with a development issuer, sends
patient-view requests (full prefetch, one fresh token each, made beforehand) at 1, 10
and 50 concurrent clients, and prints p50/p99 latency next to the single in-process
evaluation time of the same records. The CDS Hooks guidance is about 500 ms.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from cledecide import default_rules_dir, evaluate_patient, load_ruleset, patients_of
from cledecide.engine.load import parse
from cledecide.fhir_r4.export import hook_request
from cledecide.service.server import dev_setup, dev_token

ROOT = Path(__file__).resolve().parent.parent
FHIR = ROOT / "examples" / "fhir"
NAMES = sorted(p.stem for p in (ROOT / "examples").glob("*.yaml") if p.stem != "expected")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def load(base: str, bodies: list[bytes], tokens: list[str], clients: int) -> list[float]:
    latencies: list[float] = []
    queue = list(zip(bodies, tokens))
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(
            max_connections=clients, max_keepalive_connections=clients)) as client:
        async def worker() -> None:
            while queue:
                body, token = queue.pop()
                started = time.perf_counter()
                r = await client.post(f"{base}/cledecide-patient-view", content=body,
                                      headers={"Authorization": f"Bearer {token}",
                                               "Content-Type": "application/json"})
                latencies.append((time.perf_counter() - started) * 1000)
                assert r.status_code == 200, r.text
        await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = Path(tempfile.mkdtemp(prefix="cledecide-bench-"))
    dev_setup(folder, port)
    cli = Path(sys.executable).parent / "cledecide"
    proc = subprocess.Popen([str(cli), "serve", "--config", str(folder / "config.yaml"),
                             "--port", str(port), "--workers", str(args.workers), "--allow-draft"],
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/cds-services"
    try:
        for _ in range(300):
            try:
                httpx.get(base, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        bundles = [json.loads((FHIR / f"{n}.json").read_text()) for n in NAMES]
        ruleset = load_ruleset(default_rules_dir())
        in_process, pipeline_only = [], []
        raws = [(FHIR / f"{n}.json").read_bytes() for n in NAMES]
        for raw in raws * 10:
            started = time.perf_counter()
            ((patient, report),) = patients_of(parse(raw, "b.json"), default_rules_dir())
            mid = time.perf_counter()
            evaluate_patient(patient, ruleset, "", report)
            done = time.perf_counter()
            in_process.append((done - started) * 1000)
            pipeline_only.append((done - mid) * 1000)
        print(f"service workers: {args.workers}")
        print(f"{'clients':>8} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7}")
        for clients in (1, 10, 50):
            n = args.requests
            bodies = [json.dumps(hook_request(bundles[i % len(bundles)])).encode()
                      for i in range(n)]
            tokens = [dev_token(folder) for _ in range(n)]
            started = time.perf_counter()
            lat = asyncio.run(load(base, bodies, tokens, clients))
            wall = time.perf_counter() - started
            print(f"{clients:>8} {n:>9} {pct(lat, 50):>8.1f} {pct(lat, 99):>8.1f} "
                  f"{n / wall:>7.0f}")
        print(f"in process, same records, rules loaded once: FHIR import + pipeline median "
              f"{statistics.median(in_process):.1f} ms (pipeline alone "
              f"{statistics.median(pipeline_only):.1f} ms)")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
