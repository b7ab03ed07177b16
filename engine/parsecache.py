"""A cache of parsed rule files, so a cold start skips YAML parsing (about half of
loading the rules).

Each entry is a JSON file in the user's cache folder, named by the sha256 of the rule
file's bytes and of the parser's own source (engine/load.py), so any change to a rule
file or to the parser misses the cache. An entry's first line is the sha256 of the rest;
one that is unreadable, foreign (another key), altered (digest), not ours (owner) or
writable by others is ignored and the file parsed again. A NaN or infinity is never
cached (JSON has none): such a file is parsed, and refused, every time. Never pickle: only JSON data
and line numbers come back, and the validation and every rule check still run on them.
Set CLEDECIDE_NO_CACHE=1 to turn it off.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
import stat
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from .load import Document

FORMAT = 2
KEEP = 400  # entries: several versions of every shipped rule file
_DATE = "\u0000date"  # marks a YAML date in the JSON (no YAML key can start with NUL)


def cache_dir(kind: str = "parsed") -> Path | None:
    if os.environ.get("CLEDECIDE_NO_CACHE"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cledecide" / kind


@lru_cache(maxsize=1)
def _parser_digest() -> str:
    import yaml
    source = Path(__file__).with_name("load.py").read_bytes()
    return hashlib.sha256(source + f"|{FORMAT}|{yaml.__version__}".encode()).hexdigest()


def _key(raw: bytes) -> str:
    return hashlib.sha256(hashlib.sha256(raw).digest() + _parser_digest().encode()).hexdigest()


class _Uncacheable(Exception):
    pass


def _encode(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or k.startswith("\u0000"):
                raise _Uncacheable
            out[k] = _encode(v)
        return out
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dt.datetime):
        raise _Uncacheable  # our loader refuses times of day; never cache a surprise
    if isinstance(value, dt.date):
        return {_DATE: value.isoformat()}
    if isinstance(value, float) and not math.isfinite(value):
        raise _Uncacheable  # JSON has no NaN: the file is parsed (and refused) each time
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise _Uncacheable


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _DATE in value:
            return dt.date.fromisoformat(value[_DATE])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def read_trusted(path: Path) -> dict[str, Any] | None:
    """An entry's JSON if the file is a regular file of ours that nobody else may write
    and its first line is the sha256 of the rest, else None."""
    import orjson
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o022 \
                or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
            return None
        digest, _, body = path.read_bytes().partition(b"\n")
        if digest.decode("ascii", "replace") != hashlib.sha256(body).hexdigest():
            return None
        entry = orjson.loads(body)
        return entry if isinstance(entry, dict) else None
    except (OSError, ValueError):
        return None


def write_atomic(folder: Path, name: str, body: dict[str, Any]) -> None:
    """Write an entry (its digest, a newline, its JSON), whole or not at all; a failure
    only means no cache."""
    import orjson
    try:
        data = orjson.dumps(body)
    except TypeError:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(hashlib.sha256(data).hexdigest().encode() + b"\n" + data)
            os.replace(tmp, folder / name)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        return


def prune(folder: Path, keep: int) -> None:
    """Keep the newest `keep` entries: every edit of a rule file adds one."""
    try:
        entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[keep:]:
            old.unlink()
    except OSError:
        return


def get(raw: bytes, file: str) -> Document | None:
    """The parsed document of these bytes, if a trustworthy entry exists."""
    folder = cache_dir()
    if folder is None:
        return None
    key = _key(raw)
    entry = read_trusted(folder / f"{key}.json")
    if entry is None:
        return None
    try:
        if entry["format"] != FORMAT or entry["key"] != key:
            return None
        lines = {tuple(item[:-1]): int(item[-1]) for item in entry["lines"]}
        return Document(file=file, data=_decode(entry["data"]), lines=lines,
                        sha256=hashlib.sha256(raw).hexdigest())
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def put(raw: bytes, doc: Document) -> None:
    """Keep a parsed document for the next start; any failure only means no cache."""
    folder = cache_dir()
    if folder is None:
        return
    try:
        body = {"format": FORMAT, "key": _key(raw), "data": _encode(doc.data),
                "lines": [[*path, line] for path, line in doc.lines.items()]}
    except _Uncacheable:
        return
    write_atomic(folder, f"{body['key']}.json", body)
    prune(folder, KEEP)
