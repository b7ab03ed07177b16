"""A cache of the checked rule set, so that a cold start skips validating and checking
the rule files (most of the time `load_ruleset` takes).

An entry is keyed by the sha256 of every file in the rules folder (names and bytes), the
folder as given, the engine's own source (every module of cledecide.engine) and the
versions of Python, pydantic and PyYAML: any change to a rule file or to the code that
checks rules misses the cache. It is trusted like a parse-cache entry (a regular file of
ours, writable by nobody else, its first line the sha256 of the rest) and must name the
rule set's sha256 that the folder's files give now. Never pickle: the entry is JSON, the
validated models as data, rebuilt without validating them again (they are exactly what
validation produced). Each condition is parsed again from its text, so no condition
tree comes from the cache; an entry is written only when it rebuilds, in this process,
into a rule set equal to the checked one. CLEDECIDE_NO_CACHE=1 turns it off.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import sys
import types
import typing
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from . import conditions as C
from . import ruleset as checker
from .errors import RuleError
from .facts import fact_specs
from .identity import engine_sha256
from .load import read_bytes
from .models import bare
from .parsecache import cache_dir, prune, read_trusted, write_atomic
from .ruleset import (RULE_FILE_LIMIT, DrugEntry, EvidenceEntry, Provenance, Rule,
                      RuleSet, RuleSpec, _rules_hash)

FORMAT = 1
KEEP = 16  # rule sets (about 260 kB each): the shipped one and a reviewer's drafts


@dataclass(frozen=True)
class Probe:
    """What the folder's files are now: the entry's key and the hash of the files."""

    key: str
    files_sha256: str


@lru_cache(maxsize=1)
def _code_digest() -> str:
    import pydantic
    import yaml
    return hashlib.sha256(f"{FORMAT}|{sys.version}|{pydantic.VERSION}|{yaml.__version__}|"
                          f"{engine_sha256()}".encode()).hexdigest()


def probe(folder: Path | str) -> Probe | None:
    """Hash the folder's files; None (no cache) when the cache is off or a file cannot
    be read (the full check then reports it)."""
    if cache_dir("rulesets") is None:
        return None
    folder = Path(folder)
    files = []
    try:
        for path in sorted(folder.glob("*.yaml")):
            files.append((path.name, hashlib.sha256(
                read_bytes(path, RuleError, RULE_FILE_LIMIT)).hexdigest()))
        where = f"{folder}\0{folder.resolve()}"
    except (RuleError, OSError):
        return None
    sha = _rules_hash(files)
    key = hashlib.sha256(f"{_code_digest()}|{where}|{sha}".encode()).hexdigest()
    return Probe(key, sha)


def get(found: Probe, folder: Path | str) -> RuleSet | None:
    """The checked rule set of these files, if a trustworthy entry exists."""
    place = cache_dir("rulesets")
    if place is None:
        return None
    entry = read_trusted(place / f"{found.key}.json")
    if entry is None:
        return None
    try:
        if entry["format"] != FORMAT or entry["key"] != found.key \
                or entry["files_sha256"] != found.files_sha256 \
                or entry["folder"] != str(folder):
            return None
        return _rebuild(entry)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, C.ConditionError):
        return None


def put(found: Probe, ruleset: RuleSet) -> None:
    """Keep a checked rule set for the next start, if it is the one these files give
    and it rebuilds exactly; anything else only means no cache."""
    place = cache_dir("rulesets")
    if place is None or ruleset.files_sha256 != found.files_sha256:
        return  # a file changed while it was checked
    entry = {
        "format": FORMAT, "key": found.key, "sha256": ruleset.sha256,
        "files_sha256": ruleset.files_sha256,
        "folder": ruleset.folder,
        "provenance": ruleset.provenance.model_dump(mode="json"),
        "evidence": {k: v.model_dump(mode="json") for k, v in ruleset.evidence.items()},
        "drugs": {k: v.model_dump(mode="json") for k, v in ruleset.drugs.items()},
        "rules": [[r.spec.model_dump(mode="json"), r.stage, r.file, r.line]
                  for r in ruleset.rules],
        "inactive": [s.model_dump(mode="json") for s in ruleset.inactive],
        "derived": sorted(ruleset.derived),
        "thresholds": ruleset.thresholds,
    }
    try:
        same = _rebuild(entry) == ruleset
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, C.ConditionError):
        same = False
    if same:
        write_atomic(place, f"{found.key}.json", entry)
        prune(place, KEEP)


def _rebuild(entry: dict[str, Any]) -> RuleSet:
    drugs = {k: _construct(DrugEntry, v) for k, v in entry["drugs"].items()}
    provenance = _construct(Provenance, entry["provenance"])
    specs = fact_specs(drugs)
    derived = frozenset(entry["derived"])
    thresholds = {k: float(v) for k, v in entry["thresholds"].items()}
    vocab = C.Vocabulary(specs, derived, thresholds)
    rules = []
    for data, stage, file, line in entry["rules"]:
        spec = _construct(RuleSpec, data)
        node = C.parse(spec.when, vocab)
        rules.append(Rule(spec, stage, node, C.nnf(node, vocab), file, line))
    return RuleSet(
        provenance=provenance,
        evidence={k: _construct(EvidenceEntry, v) for k, v in entry["evidence"].items()},
        drugs=drugs, rules=tuple(rules), facts=specs, derived=derived,
        sha256=entry["sha256"], folder=entry["folder"],
        inactive=tuple(_construct(RuleSpec, s) for s in entry["inactive"]),
        thresholds=dict(vocab.thresholds), files_sha256=entry["files_sha256"])


M = typing.TypeVar("M", bound=BaseModel)


def _construct(model: type[M], data: dict[str, Any]) -> M:
    """A model from its own model_dump(mode='json'), unvalidated like model_construct
    (every field is in the dump), nested models and dates rebuilt by the field types."""
    plan = _plan(model)
    if len(data) != len(plan):
        raise ValueError(f"{model.__name__}: fields differ")
    values = {name: data[name] if convert is None else convert(data[name])
              for name, convert in plan}
    return bare(model, values, set(values))


Convert = Callable[[Any], Any]


@lru_cache(maxsize=None)
def _plan(model: type[BaseModel]) -> tuple[tuple[str, Convert | None], ...]:
    """Per field, how its JSON value becomes the model's value (None: as it is)."""
    return tuple((name, _converter(info.annotation)) for name, info in model.model_fields.items())


def _converter(tp: Any) -> Convert | None:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _converter(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        options: list[tuple[Any, Convert]] = []
        for arg in typing.get_args(tp):
            convert = _converter(arg)
            if convert is not None:
                inner = typing.get_args(arg)[0] if typing.get_origin(arg) is typing.Annotated \
                    else arg
                shape = typing.get_origin(inner) or inner
                kind = {list: list, dict: dict, dt.date: str, float: (int, float)}.get(shape, dict)
                options.append((kind, convert))
        if not options:
            return None  # unions of scalars (e.g. a number of days or a threshold's name)

        def union(value: Any) -> Any:
            for kind, convert in options:
                if isinstance(value, kind) and not isinstance(value, bool):
                    return convert(value)
            return value
        return union
    if origin is list:
        one = _converter(typing.get_args(tp)[0])
        return None if one is None else (lambda value: [one(v) for v in value])
    if origin is dict:
        item = _converter(typing.get_args(tp)[1])
        return None if item is None else (lambda value: {k: item(v) for k, v in value.items()})
    if isinstance(tp, type):
        if issubclass(tp, BaseModel):
            return lambda value: _construct(tp, value)
        if tp is dt.date:
            return dt.date.fromisoformat
        if tp is float:
            return float
    return None


def load_ruleset(folder: Path | str) -> RuleSet:
    """A checked RuleSet, or the first error (by file and line) as a RuleError. A rule
    set checked before, with the same files and code, comes from this cache."""
    found = probe(folder)
    if found is not None:
        cached = get(found, folder)
        if cached is not None:
            return cached
    ruleset, findings = checker.check_folder(folder)
    if ruleset is None:
        # Unreadable files first: their rules are missing, which causes the rest.
        errors = sorted((f for f in findings if f.severity == "error"),
                        key=lambda f: (f.code != "format", f.file or "", f.line or 0))
        first = errors[0]
        more = f" (and {len(errors) - 1} more errors; run 'cledecide rules check')" \
            if len(errors) > 1 else ""
        raise RuleError(first.message + more, first.file, first.line, first.field)
    if found is not None:
        put(found, ruleset)
    return ruleset
