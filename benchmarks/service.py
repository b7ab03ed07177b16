"""The CDS Hooks service measured against a baseline, interleaved in one run (a
measurement, never a test assertion).

    .venv/bin/python benchmarks/service.py [--requests 300] [--baseline REF] [--rounds 3]

The baseline is another commit of this repository (default: the service as it was
before this session's FHIR and service work, 0489211^), taken with `git archive` into a
temp dir. Both are measured in the same process and on the same machine, alternating,
so machine load hits both alike:

1. in-process cost: (a) the FHIR import and the rules of one record, (b) one
   patient-view request end to end without HTTP (the JWT check and seen-token write,
   the body, the patient check, the FHIR import, the rules, the cards, the audit row);
   today's and the new code alternating request by request;
2. HTTP latency (p50/p99) and throughput at 1, 10 and 50 concurrent clients, one
   worker each, baseline and new server alternating level by level;
3. `--workers 2` throughput against one worker at 50 clients (new code), alternating;
4. a keep-alive client's latency with two workers (baseline and new).

Requests are patient-view with full prefetch for the bundled FHIR examples, a fresh
token each (signed beforehand). The load client is a small asyncio HTTP/1.1 client
(keep-alive, pre-built requests), so it costs the 2-core machine little.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
FHIR = ROOT / "examples" / "fhir"
NAMES = sorted(p.stem for p in (ROOT / "examples").glob("*.yaml") if p.stem != "expected")
PV = "cledecide-patient-view"
DEFAULT_BASELINE = "0489211^"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ the two codes

def extract(ref: str, into: Path) -> Path:
    """The repository at `ref` as a package folder named cledecide (for a server run
    with PYTHONPATH) that is also importable under another name (in process)."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref],
                          capture_output=True, check=True).stdout
    pkg = into / "cledecide"
    pkg.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(pkg, filter="data")
    return pkg


def import_as(name: str, folder: Path) -> None:
    """`folder` as package `name`, without running its front door (its modules import
    each other relatively, so both copies live side by side)."""
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    module = importlib.util.module_from_spec(spec)
    module.__path__ = [str(folder)]  # type: ignore[attr-defined]
    sys.modules[name] = module


class Code:
    """One version of the service in this process: its Service, and a function doing
    one request's work."""

    def __init__(self, label: str, package: str, folder: Path, rules: str | None) -> None:
        server = importlib.import_module(f"{package}.service.server")
        self.label, self.server, self.folder = label, server, folder
        self.port = free_port()
        server.dev_setup(folder, self.port)
        self.service = server.Service(server.load_config(folder / "config.yaml"), rules)
        self.endpoint = self.service.config.service_url + "/" + PV
        self.audit_ms: list[float] = []
        self.one: Callable[[bytes, str], Any] = (
            self._new if hasattr(self.service, "engine") else self._old)

    def token(self) -> str:
        return self.server.dev_token(self.folder)

    def _old(self, body: bytes, token: str) -> Any:
        assert self.service.auth.check(f"Bearer {token}", self.endpoint)
        status, _ = self.service.handle(PV, body)
        assert status == 200

    def _new(self, body: bytes, token: str) -> Any:
        calls = importlib.import_module(self.server.__package__ + ".calls")
        hooks = importlib.import_module(self.server.__package__ + ".hooks")
        prefetch = importlib.import_module(self.server.__package__ + ".prefetch")
        assert self.service.auth.check(f"Bearer {token}", self.endpoint)
        call = calls.parse_call(PV, body)
        assert hooks.check_given(call) is None
        wanted = self.service.engine.templates
        assert not prefetch.missing(call.request["prefetch"], wanted)
        answer = self.service.engine.answer(call, {k: call.request["prefetch"][k]
                                                   for k in wanted})
        assert answer.status == 200, answer.payload
        started = time.perf_counter()
        self.service.record(PV, answer, call, None)
        self.audit_ms.append((time.perf_counter() - started) * 1000)


class Reading:
    """The FHIR import and the rules alone (what the README called "in process"): a
    bundled FHIR example read and evaluated, rules loaded once."""

    def __init__(self, label: str, package: str, rules: str | None) -> None:
        load = importlib.import_module(f"{package}.engine.load")
        files = importlib.import_module(f"{package}.fhir_r4.files")
        pipeline = importlib.import_module(f"{package}.engine.pipeline")
        rulecache = importlib.import_module(f"{package}.engine.rulecache")
        ruleset = importlib.import_module(f"{package}.engine.ruleset")
        self.label, self.rules = label, rules or str(ruleset.default_rules_dir())
        self.ruleset = rulecache.load_ruleset(self.rules)
        self.parse, self.patients_of = load.parse, files.patients_of
        self.evaluate = pipeline.evaluate_patient

    def one(self, raw: bytes, _: str) -> None:
        ((patient, report),) = self.patients_of(self.parse(raw, "b.json"), self.rules)
        self.evaluate(patient, self.ruleset, "", report)

    def token(self) -> str:
        return ""


def in_process(codes: list[Any], bodies: list[bytes], n: int) -> dict[str, list[float]]:
    """Per-request milliseconds, the codes alternating request by request."""
    times: dict[str, list[float]] = {c.label: [] for c in codes}
    for code in codes:  # warm each once
        code.one(bodies[0], code.token())
    for i in range(n):
        for code in codes:
            token = code.token()
            started = time.perf_counter()
            code.one(bodies[i % len(bodies)], token)
            times[code.label].append((time.perf_counter() - started) * 1000)
    return times


# ------------------------------------------------------------------ over HTTP

class Running:
    """A `cledecide serve` of one version (PYTHONPATH picks the code) on a free port."""

    def __init__(self, label: str, pythonpath: str | None, folder: Path, workers: int,
                 dev: Any) -> None:
        self.label, self.folder, self.dev = label, folder, dev
        self.port = free_port()
        dev.dev_setup(folder, self.port)
        env = dict(os.environ)
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        code = "import sys; from cledecide.cli.main import run; sys.argv[0] = 'cledecide'; run()"
        self.proc = subprocess.Popen([sys.executable, "-c", code, "serve", "--config",
                                      str(folder / "config.yaml"), "--port", str(self.port),
                                      "--workers", str(workers), "--allow-draft"],
                                     env=env, stderr=subprocess.DEVNULL)
        import httpx
        for _ in range(600):
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/cds-services", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)

    def requests(self, bodies: list[bytes], n: int) -> list[bytes]:
        out = []
        for i in range(n):
            body, token = bodies[i % len(bodies)], self.dev.dev_token(self.folder)
            out.append((f"POST /cds-services/{PV} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


async def _exchange(reader: Any, writer: Any, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status


async def load(port: int, requests: list[bytes], clients: int) -> tuple[list[float], float]:
    """Latencies (ms) and wall time of `requests` sent by `clients` keep-alive clients."""
    queue = list(reversed(requests))
    latencies: list[float] = []

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while queue:
            request = queue.pop()
            started = time.perf_counter()
            status = await _exchange(reader, writer, request)
            latencies.append((time.perf_counter() - started) * 1000)
            assert status == 200, status
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, time.perf_counter() - started


async def keep_alive(port: int, n: int = 60) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"GET /cds-services HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    found = []
    for _ in range(n):
        started = time.perf_counter()
        await _exchange(reader, writer, request)
        found.append((time.perf_counter() - started) * 1000)
    writer.close()
    return statistics.median(found[10:])


# ------------------------------------------------------------------ the report

def report_in_process(times: dict[str, list[float]], title: str) -> None:
    print(title)
    medians = {k: statistics.median(v) for k, v in times.items()}
    for label, values in times.items():
        print(f"   {label:<10} median {medians[label]:6.2f} ms   p90 {pct(values, 90):6.2f} ms"
              f"   ({len(values)} requests)")
    labels = list(times)
    if len(labels) == 2:
        print(f"   new / today = {medians[labels[1]] / medians[labels[0]]:.2f}")


def http_levels(servers: list[Running], bodies: list[bytes], n: int, rounds: int) -> None:
    print("\n2. over HTTP, one worker each, levels alternating between the servers:")
    print(f"   {'server':<10} {'clients':>7} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'req/s':>7}")
    for clients in (1, 10, 50):
        for _ in range(rounds):
            for srv in servers:
                requests = srv.requests(bodies, n)
                lat, wall = asyncio.run(load(srv.port, requests, clients))
                print(f"   {srv.label:<10} {clients:>7} {n:>8} {pct(lat, 50):>8.1f} "
                      f"{pct(lat, 99):>8.1f} {n / wall:>7.0f}")


def workers_ratio(one: Running, two: Running, bodies: list[bytes], n: int,
                  rounds: int) -> None:
    print("\n3. new code at 50 clients: --workers 2 against one worker, alternating:")
    rates: dict[str, list[float]] = {"1 worker": [], "2 workers": []}
    for _ in range(rounds):
        for label, srv in (("1 worker", one), ("2 workers", two)):
            lat, wall = asyncio.run(load(srv.port, srv.requests(bodies, n), 50))
            rates[label].append(n / wall)
            print(f"   {label:<10} {n / wall:7.0f} req/s   p50 {pct(lat, 50):7.1f} ms   "
                  f"p99 {pct(lat, 99):7.1f} ms")
    ratio = statistics.median(rates["2 workers"]) / statistics.median(rates["1 worker"])
    print(f"   throughput ratio (medians) 2 workers / 1 worker = {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--in-process", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE)
    args = parser.parse_args()
    from cledecide.fhir_r4.export import hook_request
    from cledecide.service import server as new_dev
    bodies = [json.dumps(hook_request(json.loads((FHIR / f"{n}.json").read_text()))).encode()
              for n in NAMES]
    tmp = Path(tempfile.mkdtemp(prefix="cledecide-bench-"))
    try:
        base_pkg = extract(args.baseline, tmp / "base")
        import_as("cledecide_base", base_pkg)
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.baseline],
                             capture_output=True, text=True).stdout.strip()
        print(f"today = {args.baseline} ({rev}); new = this checkout; {os.cpu_count()} cores")
        codes = [Code("today", "cledecide_base", tmp / "in-base", str(base_pkg / "rules")),
                 Code("new", "cledecide", tmp / "in-new", None)]
        readers = [Reading("today", "cledecide_base", str(base_pkg / "rules")),
                   Reading("new", "cledecide", None)]
        raws = [(FHIR / f"{n}.json").read_bytes() for n in NAMES]
        report_in_process(in_process(readers, raws, args.in_process),
                          "\n1a. in process, FHIR import + rules of one bundled record "
                          "(rules loaded once), alternating:")
        report_in_process(in_process(codes, bodies, args.in_process),
                          "\n1b. in process, one patient-view request end to end (JWT, "
                          "body, patient check, FHIR import, rules, cards, audit row with "
                          "its fsync), alternating:")
        print(f"   of which the new code's audit row (one transaction, fsync): median "
              f"{statistics.median(codes[1].audit_ms):.2f} ms (today: a row and a "
              "seen-token write, each with its fsync)")
        base_dev = importlib.import_module("cledecide_base.service.server")
        servers = [Running("today", str(tmp / "base"), tmp / "srv-base", 1, base_dev),
                   Running("new", None, tmp / "srv-new", 1, new_dev)]
        try:
            http_levels(servers, bodies, args.requests, args.rounds)
            two = Running("new", None, tmp / "srv-new-2", 2, new_dev)
            two_base = Running("today", str(tmp / "base"), tmp / "srv-base-2", 2, base_dev)
            try:
                workers_ratio(servers[1], two, bodies, args.requests, args.rounds)
                print("\n4. a keep-alive client, one request after another (discovery), "
                      "median ms:")
                for label, srv in (("today, 2 workers", two_base), ("new, 2 workers", two),
                                   ("new, 1 worker", servers[1])):
                    print(f"   {label:<17} {asyncio.run(keep_alive(srv.port)):6.1f} ms")
            finally:
                two.stop()
                two_base.stop()
        finally:
            for srv in servers:
                srv.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
