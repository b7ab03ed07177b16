"""The audit trail: one append-only row per evaluation (and per feedback), each carrying
the hash of the row before it, in an embedded SQLite database that needs no set-up.

A row is written in one transaction (WAL journal), so a crash loses nothing committed
and leaves no half row. `verify` walks the chain and names the first row that was
changed, removed or inserted. Patient ids are stored only as keyed hashes (HMAC-SHA256
with a per-database key), never in clear.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

GENESIS = "0" * 64
FIELDS = ("time", "kind", "service", "request_id", "ruleset_name", "ruleset_version",
          "ruleset_sha256", "input_sha256", "patient_hash", "recommendation", "card_ids",
          "feedback")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY, time TEXT NOT NULL, kind TEXT NOT NULL, service TEXT NOT NULL,
  request_id TEXT NOT NULL, ruleset_name TEXT NOT NULL, ruleset_version TEXT NOT NULL,
  ruleset_sha256 TEXT NOT NULL, input_sha256 TEXT NOT NULL, patient_hash TEXT NOT NULL,
  recommendation TEXT NOT NULL, card_ids TEXT NOT NULL, feedback TEXT NOT NULL,
  prev_hash TEXT NOT NULL, row_hash TEXT NOT NULL);
"""


def row_hash(prev: str, values: dict[str, Any]) -> str:
    """The chain link: sha256 over the previous hash and the row's canonical JSON."""
    body = json.dumps([values.get(f, "") for f in FIELDS], ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256((prev + body).encode()).hexdigest()


@dataclass(frozen=True)
class Problem:
    seq: int
    message: str

    def __str__(self) -> str:
        return f"row {self.seq}: {self.message}"


class AuditLog:
    """Append-only, hash-chained rows; safe to share between threads of one process."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False,
                                   isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            found = self._db.execute("SELECT value FROM meta WHERE key='patient_key'").fetchone()
            if found is None:
                self._db.execute("INSERT INTO meta VALUES ('patient_key', ?)",
                                 (secrets.token_hex(32),))
                found = self._db.execute(
                    "SELECT value FROM meta WHERE key='patient_key'").fetchone()
            self._db.execute("COMMIT")
        self._key = bytes.fromhex(found[0])
        if os.name == "posix":
            try:
                os.chmod(self.path, 0o600)
            except OSError:
                pass

    def patient_hash(self, patient_id: str) -> str:
        return hmac.new(self._key, patient_id.encode(), hashlib.sha256).hexdigest()

    def append(self, **values: Any) -> int:
        """One row in one transaction; returns its sequence number."""
        values = {f: values.get(f, "") for f in FIELDS}
        values["time"] = values["time"] or dt.datetime.now(dt.timezone.utc).isoformat(
            timespec="milliseconds")
        for f in ("card_ids", "feedback", "recommendation"):
            if not isinstance(values[f], str):
                values[f] = json.dumps(values[f], ensure_ascii=False, sort_keys=True,
                                       separators=(",", ":"))
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                last = self._db.execute(
                    "SELECT seq, row_hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
                digest = row_hash(prev, values)
                self._db.execute(
                    f"INSERT INTO audit (seq, {', '.join(FIELDS)}, prev_hash, row_hash) "
                    f"VALUES (?, {', '.join('?' for _ in FIELDS)}, ?, ?)",
                    (seq, *[str(values[f]) for f in FIELDS], prev, digest))
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('head', ?)",
                                 (f"{seq}:{digest}",))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return seq

    def rows(self) -> Iterator[dict[str, Any]]:
        cur = self._db.execute(f"SELECT seq, {', '.join(FIELDS)}, prev_hash, row_hash "
                               "FROM audit ORDER BY seq")
        names = ["seq", *FIELDS, "prev_hash", "row_hash"]
        for row in cur:
            yield dict(zip(names, row))

    def verify(self) -> list[Problem]:
        """The chain's problems, first one first (empty: intact)."""
        problems: list[Problem] = []
        prev, expected_seq = GENESIS, 1
        for row in self.rows():
            seq = row["seq"]
            if seq != expected_seq:
                problems.append(Problem(seq, f"row(s) {expected_seq}..{seq - 1} were removed"))
            if row["prev_hash"] != prev:
                problems.append(Problem(seq, "its link to the row before does not match: a "
                                             "row before it was removed, inserted or changed"))
            if row_hash(row["prev_hash"], row) != row["row_hash"]:
                problems.append(Problem(seq, "its content was changed after it was written"))
            prev, expected_seq = row["row_hash"], seq + 1
        head = self._db.execute("SELECT value FROM meta WHERE key='head'").fetchone()
        if head is not None:
            last_seq, last_hash = head[0].split(":", 1)
            if int(last_seq) != expected_seq - 1 or last_hash != prev:
                problems.append(Problem(int(last_seq), "the last row(s) were removed or "
                                                       "changed (the chain head does not match)"))
        return problems

    def close(self) -> None:
        self._db.close()


def record_result(log: AuditLog, result: dict[str, Any], service: str,
                  request_id: str) -> int:
    """One evaluation's row from its contract result (what `evaluate --audit` writes)."""
    rec = result["recommendation"]
    return log.append(kind="evaluate", service=service, request_id=request_id,
                      ruleset_name=result["ruleset"]["name"],
                      ruleset_version=result["ruleset"]["version"],
                      ruleset_sha256=result["ruleset"]["sha256"],
                      input_sha256=result["input_sha256"],
                      patient_hash=log.patient_hash(result["patient_id"]),
                      recommendation={"action": rec["action"], "drug": rec["drug"],
                                      "rule": rec["rule"]}, card_ids=[])


def show(path: Path | str, limit: int = 50) -> str:
    log = AuditLog(path)
    try:
        rows = list(log.rows())[-limit:]
    finally:
        log.close()
    out = []
    for r in rows:
        rec = r["recommendation"]
        out.append(f"{r['seq']:>6}  {r['time']}  {r['kind']:<9} {r['service']:<13} "
                   f"{r['ruleset_name']} {r['ruleset_version']}  patient "
                   f"{r['patient_hash'][:12]}  {rec}  {r['row_hash'][:12]}\n")
    return "".join(out) or "no rows\n"


def verify(path: Path | str) -> tuple[int, list[Problem]]:
    if not Path(path).is_file():
        from ..engine.errors import InputError
        raise InputError("no audit database here", str(path))
    log = AuditLog(path)
    try:
        return sum(1 for _ in log.rows()), log.verify()
    finally:
        log.close()
