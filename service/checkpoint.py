"""Signed checkpoints of the audit chain, kept outside the database, in the manner of
Certificate Transparency's signed tree heads: each says "log L had N rows and its row N
was linked as H at time T", signed (Ed25519) with the service's own key. Whoever later
shortens or rewrites the chain, even with the chain key, cannot make it agree with a
checkpoint stored elsewhere: `audit verify --config` names the checkpoint it breaks.

A checkpoint is one JSON line appended to the config's `checkpoints:` file (one write
under an exclusive lock, so several workers can append) and printed, so an operator can
also copy it to a store no one here can edit.
"""
from __future__ import annotations

import base64
import datetime as dt
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..engine.errors import InputError
from .audit import AuditLog, Problem


def _private_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the checkpoint key ({type(exc).__name__})",
                         str(path)) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError("the checkpoint key must be an Ed25519 private key (PEM)", str(path))
    return key


def make_key(path: Path) -> None:
    """A new Ed25519 signing key (private PEM, mode 0600) and its public PEM beside it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    path.with_suffix(".pub.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def _raw_public(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _signed_text(c: dict[str, Any]) -> bytes:
    return json.dumps([c["log"], c["seq"], c["hash"], c["time"], c["key"]],
                      separators=(",", ":")).encode()


def checkpoint(log: AuditLog, key_file: Path, out: Path) -> dict[str, Any]:
    """Sign the current head of `log` and append it to `out`; the checkpoint."""
    key = _private_key(key_file)
    seq, digest, good = log.head()
    if not good:
        raise InputError("the chain head was rewritten: no checkpoint signed (run audit "
                         "verify)", log.target)
    c = {"log": log.log_id, "seq": seq, "hash": digest,
         "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
         "key": hashlib.sha256(_raw_public(key.public_key())).hexdigest()[:16]}
    c["sig"] = base64.b64encode(key.sign(_signed_text(c))).decode()
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps(c, separators=(",", ":")) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return c


def _read(out: Path) -> list[tuple[int, Any]]:
    if not out.is_file():
        return []
    lines = out.read_text().splitlines()
    found = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                found.append((n, json.loads(line)))
            except ValueError:
                found.append((n, None))
    return found


def check(log: AuditLog, key_file: Path, out: Path) -> tuple[int, list[Problem]]:
    """How many checkpoints hold, and the problems: each checkpoint's signature, then
    the chain behind it (truncated: its row is gone; rewritten: its link differs)."""
    from cryptography.exceptions import InvalidSignature
    public = _private_key(key_file).public_key()
    problems, count = [], 0
    for n, c in _read(out):
        name = f"checkpoint {n} of {out.name}"
        try:
            public.verify(base64.b64decode(c["sig"]), _signed_text(c))
        except (InvalidSignature, KeyError, TypeError, ValueError):
            problems.append(Problem(0, f"{name}: not a valid signed checkpoint"))
            continue
        if c["log"] != log.log_id:
            continue  # another log's checkpoint (a database started afresh is named below)
        count += 1
        row = log.row(c["seq"]) if c["seq"] > 0 else None
        if c["seq"] > 0 and row is None:
            problems.append(Problem(c["seq"], f"truncated behind {name} (row {c['seq']}, "
                                              f"signed {c['time']}): the row is gone"))
        elif row is not None and row["row_hash"] != c["hash"]:
            problems.append(Problem(c["seq"], f"rewritten behind {name} (row {c['seq']}, "
                                              f"signed {c['time']}): its link differs"))
    if not count and any(c for _, c in _read(out)):
        problems.append(Problem(0, f"no checkpoint in {out.name} is for this log "
                                   f"({log.log_id}): was the database replaced?"))
    return count, problems


class Checkpoints:
    """The service's own checkpoints: every `checkpoint_every_rows` rows (the writer of
    that row signs) and every `checkpoint_every_minutes` while the head moves."""

    def __init__(self, config: Any, log: AuditLog) -> None:
        self.log = log
        self.key, self.out = config.checkpoint_key_file, config.checkpoints
        self.rows = max(1, config.checkpoint_every_rows)
        self.minutes = max(0.01, config.checkpoint_every_minutes)
        self.last_seq = -1

    @property
    def enabled(self) -> bool:
        return self.key is not None and self.out is not None

    def after(self, seq: int) -> None:
        if self.enabled and seq % self.rows == 0:
            self.now()

    def now(self) -> None:
        c = checkpoint(self.log, self.key, self.out)
        self.last_seq = c["seq"]

    async def every_minutes(self, pool: Any) -> None:
        import asyncio
        import logging
        while self.enabled:
            await asyncio.sleep(self.minutes * 60)
            try:
                seq = (await asyncio.get_running_loop().run_in_executor(pool, self.log.head))[0]
                if seq and seq != self.last_seq:  # nothing new: nothing to sign
                    await asyncio.get_running_loop().run_in_executor(pool, self.now)
            except Exception as exc:  # noqa: BLE001 - retried next time; said once
                logging.getLogger("cledecide.service").error(
                    "checkpoint failed (%s)", type(exc).__name__)


def verify_log(target: str | Path, config: Any = None) -> tuple[int, int, list[Problem]]:
    """Read-only: the chain (its MACs, links and head) and, with a config naming them,
    every checkpoint. (rows, checkpoints that hold, problems)."""
    from .audit import open_log
    log = open_log(target, config.audit_key_file if config else None, read_only=True)
    try:
        rows = sum(1 for _ in log.rows())
        problems = log.verify()
        held = 0
        if config is not None and config.checkpoints and config.checkpoint_key_file:
            held, more = check(log, config.checkpoint_key_file, config.checkpoints)
            problems += more
        return rows, held, problems
    finally:
        log.close()


def checkpoint_now(target: str | Path, config: Any) -> dict[str, Any]:
    """`cledecide audit checkpoint`: sign the head now."""
    from .audit import open_log
    if not config.checkpoints or not config.checkpoint_key_file:
        raise InputError("the config names no checkpoints file and checkpoint_key_file")
    log = open_log(target, config.audit_key_file, read_only=True)
    try:
        return checkpoint(log, config.checkpoint_key_file, config.checkpoints)
    finally:
        log.close()
