"""The engine's identity: the sha256 of its own source. Every result names it beside the
rule set's hash, and the rule-set cache keys on it; any stage may import this module,
which imports nothing of the engine."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def engine_sha256() -> str:
    """The sha256 of the engine's own source (every module of cledecide.engine, by name):
    advice is traceable to the code that gave it, not only to the rules."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()
