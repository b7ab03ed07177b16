"""The audit trail: one append-only row per hook answer (a card delivered, none needed,
a request refused or timed out) and per feedback item, each carrying a MAC of the row
before it. SQLite by default, PostgreSQL for several instances (service/store.py).

The chain is keyed: HMAC-SHA256 with a key that lives outside the database (the config's
`audit_key_file`), so someone with only the database cannot rewrite a row, forge an
appended one or move the head and re-hash. Patient ids are stored only as HMACs under a
second key derived from the same secret. Removing the newest rows is caught against the
signed checkpoints kept outside the database (service/checkpoint.py).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..engine.errors import InputError
from .store import COLUMNS, Store, open_store

GENESIS = "0" * 64
FORMAT = "2"
JSON_COLUMNS = ("recommendation", "cards", "feedback")
KEY_ENV = "CLEDECIDE_AUDIT_KEY_FILE"


@dataclass(frozen=True)
class Keys:
    """The audit secret (32 random bytes) and the two keys derived from it."""

    secret: bytes

    @property
    def chain(self) -> bytes:
        return hmac.new(self.secret, b"cledecide audit chain", hashlib.sha256).digest()

    @property
    def patient(self) -> bytes:
        return hmac.new(self.secret, b"cledecide patient id", hashlib.sha256).digest()

    @property
    def key_id(self) -> str:
        return hmac.new(self.chain, b"key id", hashlib.sha256).hexdigest()[:16]

    @classmethod
    def read(cls, path: Path, create: bool = False) -> "Keys":
        if create and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
        if not path.exists():
            raise InputError("no audit key here: give the service config (--config; its "
                             f"audit_key_file) or ${KEY_ENV}", str(path))
        try:
            return cls(bytes.fromhex(path.read_text().strip()))
        except (OSError, ValueError):
            raise InputError("cannot read the audit key (64 hex digits)", str(path)) from None


def key_path(target: str | Path, key_file: Path | None = None) -> Path:
    """Where the audit key is: the config's file, else $CLEDECIDE_AUDIT_KEY_FILE, else
    beside a SQLite file (DB.key; a shared PostgreSQL store needs it named)."""
    if key_file is not None:
        return Path(key_file)
    if os.environ.get(KEY_ENV):
        return Path(os.environ[KEY_ENV])
    if str(target).startswith(("postgresql://", "postgres://")):
        raise InputError("a PostgreSQL audit store needs audit_key_file in the config")
    return Path(str(target) + ".key")


@dataclass(frozen=True)
class Problem:
    seq: int
    message: str

    def __str__(self) -> str:
        return f"row {self.seq}: {self.message}"


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def row_hash(key: bytes, prev: str, seq: int, values: dict[str, Any]) -> str:
    """The chain link: HMAC over the previous link, the sequence and the row's values."""
    body = json.dumps([seq, *[str(values.get(c, "")) for c in COLUMNS]],
                      ensure_ascii=False, separators=(",", ":"))
    return _mac(key, prev + "\n" + body)


def _normal(values: dict[str, Any]) -> dict[str, str]:
    out = {c: values.get(c, "") for c in COLUMNS}
    out["time"] = out["time"] or dt.datetime.now(dt.timezone.utc).isoformat(
        timespec="milliseconds")
    for c in JSON_COLUMNS:
        if not isinstance(out[c], str):
            out[c] = json.dumps(out[c], ensure_ascii=False, sort_keys=True,
                                separators=(",", ":"))
    return {c: str(v) for c, v in out.items()}


class _Reads:
    """What reading the trail needs (the base of AuditLog)."""

    store: Store
    keys: Keys

    def card(self, card_uuid: str) -> dict[str, Any] | None:
        found = self.store.read("SELECT seq, service, patient_hash, suggestions FROM cards "
                                "WHERE uuid=?", (card_uuid,))
        if not found:
            return None
        seq, service, patient, suggestions = found[0]
        return {"seq": seq, "service": service, "patient_hash": patient,
                "suggestions": json.loads(suggestions)}

    def head(self) -> tuple[int, str, bool]:
        """The head (sequence, link) and whether its MAC holds."""
        found = self.store.read("SELECT value FROM meta WHERE key='head'")
        if not found:
            return 0, GENESIS, False
        seq, digest, mac = (found[0][0].split(":") + ["", ""])[:3]
        good = hmac.compare_digest(mac, _mac(self.keys.chain, f"head:{seq}:{digest}"))
        return int(seq), digest, good

    def rows(self, where: str = "", args: tuple[Any, ...] = ()) -> Iterator[dict[str, Any]]:
        """Rows in order, read in pages (a long chain never sits in memory at once)."""
        names = ["seq", *COLUMNS, "prev_hash", "row_hash"]
        last = 0
        while True:
            page = self.store.read(
                f"SELECT {', '.join(names)} FROM audit WHERE seq > ? "
                f"{'AND ' + where if where else ''} ORDER BY seq LIMIT 2000", (last, *args))
            for r in page:
                yield dict(zip(names, r))
            if len(page) < 2000:
                return
            last = page[-1][0]

    def row(self, seq: int) -> dict[str, Any] | None:
        return next(self.rows("seq = ?", (seq,)), None)


class AuditLog(_Reads):
    """Append-only, MAC-chained rows; safe to share between threads and processes."""

    def __init__(self, target: str | Path, keys: Keys, read_only: bool = False,
                 store: Store | None = None) -> None:
        self.target = str(target)
        self.keys = keys
        self.store: Store = store or open_store(target, read_only)
        if not self.store.has_tables():
            self.store.close()
            raise InputError("not a cledecide audit database (no audit table)", self.target)
        self.meta = _meta(self.store, keys, self.target, read_only)

    @property
    def log_id(self) -> str:
        return self.meta.get("log_id", "")

    def patient_hash(self, patient_id: str) -> str:
        return _mac(self.keys.patient, patient_id)

    def append(self, **values: Any) -> int:
        """One row (and its cards, for feedback look-ups) in one transaction."""
        return self.append_many([values])[0]

    def append_many(self, batch: list[dict[str, Any]]) -> list[int]:
        """Rows in one transaction (one fsync for all: a group commit); their seqs."""
        seqs = []
        with self.store.transaction() as tx:
            seq_text, prev = tx.lock_head()[0].split(":")[:2]
            seq = int(seq_text)
            for values in batch:
                seq += 1
                prev = self._insert(tx, seq, prev, values)
                seqs.append(seq)
            head = f"{seq}:{prev}"
            tx.run("UPDATE meta SET value=? WHERE key='head'",
                   (f"{head}:{_mac(self.keys.chain, 'head:' + head)}",))
        return seqs

    def _insert(self, tx: Any, seq: int, prev: str, values: dict[str, Any]) -> str:
        row = _normal(values)
        digest = row_hash(self.keys.chain, prev, seq, row)
        tx.run(f"INSERT INTO audit (seq, {', '.join(COLUMNS)}, prev_hash, row_hash) "
               f"VALUES (?, {', '.join('?' for _ in COLUMNS)}, ?, ?)",
               (seq, *[row[c] for c in COLUMNS], prev, digest))
        cards = values.get("cards") or []
        for card in cards if isinstance(cards, list) else []:
            tx.run("INSERT INTO cards VALUES (?, ?, ?, ?, ?)",
                   (card["uuid"], seq, row["service"], row["patient_hash"],
                    json.dumps(card.get("suggestions", []))))
        return digest

    def first_use(self, key: str, until: float, now: float) -> bool:
        """A token id is good once (across workers and instances) until it expires."""
        with self.store.quick() as tx:
            fresh = tx.run("INSERT INTO jti VALUES (?, ?) ON CONFLICT DO NOTHING",
                           (key, until)).rowcount == 1
            if fresh and secrets.randbelow(500) == 0:
                tx.run("DELETE FROM jti WHERE until < ?", (now,))
        return fresh

    def verify(self) -> list[Problem]:
        """The chain's problems, first one first (empty: intact)."""
        return chain_problems(self)

    def close(self) -> None:
        self.store.close()


def _meta(store: Store, keys: Keys, target: str, read_only: bool) -> dict[str, str]:
    """The log's meta rows (made on first use): format, log id, key id, head."""
    meta = dict(store.read("SELECT key, value FROM meta"))
    if "patient_key" in meta and "format" not in meta:
        raise InputError("this audit database was written by an older cledecide "
                         "(format 1: unkeyed chain, patient key inside it); start a new "
                         "one and keep the old one read-only", target)
    if not meta and not read_only:
        with store.transaction() as tx:
            if tx.run("SELECT count(*) FROM meta").fetchone()[0] == 0:
                head = f"0:{GENESIS}"
                for k, v in (("format", FORMAT), ("log_id", str(uuid.uuid4())),
                             ("key_id", keys.key_id),
                             ("head", f"{head}:{_mac(keys.chain, 'head:' + head)}")):
                    tx.run("INSERT INTO meta VALUES (?, ?) ON CONFLICT DO NOTHING",
                           (k, v))
        meta = dict(store.read("SELECT key, value FROM meta"))
    if meta and meta.get("key_id") != keys.key_id:
        raise InputError("the audit key given is not this audit database's key "
                         f"(key id {meta.get('key_id')})", target)
    return meta


def chain_problems(log: "AuditLog") -> list[Problem]:
    """The chain's problems, first one first (empty: intact)."""
    problems: list[Problem] = []
    prev, expected = GENESIS, 1
    for row in log.rows():
        seq = row["seq"]
        if seq != expected:
            problems.append(Problem(seq, f"row(s) {expected}..{seq - 1} were removed"))
        if row["prev_hash"] != prev:
            problems.append(Problem(seq, "its link to the row before does not match: a "
                                         "row before it was removed, inserted or changed"))
        if not hmac.compare_digest(row_hash(log.keys.chain, row["prev_hash"], seq, row),
                                   row["row_hash"]):
            problems.append(Problem(seq, "its content was changed after it was written "
                                         "(or the row was forged: its MAC does not hold)"))
        prev, expected = row["row_hash"], seq + 1
    head_seq, head_hash, good = log.head()
    if not good:
        problems.append(Problem(head_seq, "the chain head was rewritten (its MAC does "
                                          "not hold)"))
    elif head_seq != expected - 1 or head_hash != prev:
        problems.append(Problem(head_seq, "the last row(s) were removed or changed (the "
                                          "chain head does not match)"))
    return problems


def open_log(target: str | Path, key_file: Path | None = None, read_only: bool = False,
             create_key: bool = False) -> AuditLog:
    """The audit log at `target` with its key (see key_path); read-only, what is not an
    audit database is said so before any key is looked for."""
    store = open_store(target, read_only)
    if not store.has_tables():
        store.close()
        raise InputError("not a cledecide audit database (no audit table)", str(target))
    try:
        keys = Keys.read(key_path(target, key_file), create=create_key and not read_only)
    except InputError:
        store.close()
        raise
    return AuditLog(target, keys, read_only, store)


def record_result(log: AuditLog, result: dict[str, Any], service: str,
                  request_id: str) -> int:
    """One evaluation's row from its contract result (what `evaluate --audit` writes)."""
    rec = result["recommendation"]
    return log.append(kind="evaluate", service=service, request_id=request_id,
                      ruleset_name=result["ruleset"]["name"],
                      ruleset_version=result["ruleset"]["version"],
                      ruleset_sha256=result["ruleset"]["sha256"],
                      engine_sha256=(result.get("engine") or {}).get("sha256", ""),
                      input_sha256=result["input_sha256"],
                      patient_hash=log.patient_hash(result["patient_id"]),
                      recommendation={"action": rec["action"], "drug": rec["drug"],
                                      "rule": rec["rule"]}, cards=[])


def verify(target: str | Path, key_file: Path | None = None) -> tuple[int, list[Problem]]:
    """Read-only: nothing is ever written to the database checked."""
    log = open_log(target, key_file, read_only=True)
    try:
        return sum(1 for _ in log.rows()), log.verify()
    finally:
        log.close()
