"""A cache of parsed rule files, so a cold start skips YAML parsing (about half of
loading the rules).

Each entry is a JSON file in the user's cache folder, named by the sha256 of the rule
file's bytes and of the parser's own source (engine/load.py), so any change to a rule
file or to the parser misses the cache. An entry carries the digest of its content;
one that is unreadable, foreign (another key), altered (digest), not ours (owner) or
writable by others is ignored and the file parsed again. Never pickle: only JSON data
and line numbers come back, and the validation and every rule check still run on them.
Set CLEDECIDE_NO_CACHE=1 to turn it off.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import stat
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from .load import Document

FORMAT = 1
_DATE = "\u0000date"  # marks a YAML date in the JSON (no YAML key can start with NUL)


def cache_dir() -> Path | None:
    if os.environ.get("CLEDECIDE_NO_CACHE"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cledecide" / "parsed"


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


def _digest(body: dict[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def get(raw: bytes, file: str) -> Document | None:
    """The parsed document of these bytes, if a trustworthy entry exists."""
    folder = cache_dir()
    if folder is None:
        return None
    key = _key(raw)
    path = folder / f"{key}.json"
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o022 \
                or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
            return None
        entry = json.loads(path.read_bytes())
        body = {"format": entry["format"], "key": entry["key"], "data": entry["data"],
                "lines": entry["lines"]}
        if entry["format"] != FORMAT or entry["key"] != key or entry["digest"] != _digest(body):
            return None
        lines = {tuple(item[:-1]): int(item[-1]) for item in entry["lines"]}
        return Document(file=file, data=_decode(entry["data"]), lines=lines,
                        sha256=hashlib.sha256(raw).hexdigest())
    except (OSError, ValueError, KeyError, TypeError, IndexError):
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
    body["digest"] = _digest(body)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(body, out, ensure_ascii=False, separators=(",", ":"))
            os.replace(tmp, folder / f"{body['key']}.json")
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        return
