"""`rules diff`: what changed between two rule sets, field by field, and for which
patients the advice changes (the step with its dose and regimen, the critical warnings,
the monitoring), each old -> new.

Both rule sets are loaded, checked and compiled once, in this process; every patient
goes through the same pipeline `evaluate` uses (cohort.stream.evaluate_all), so a
change the diff reports is a change the clinician would see.

The edit loop diffs against the same "before" folder again and again, so what each
patient's advice was under a rule set is kept in the user's cache (JSON, as the other
caches: engine/parsecache.py), keyed by the rule set's content hash (rules, drugs,
templates, thresholds, code map), the source of the code that evaluates (engine/,
fhir_r4/, cohort/, this module) and the versions of Python, pydantic, PyYAML and
durable_rules, the day, and the record's name and bytes. Anything
else misses. `CLEDECIDE_NO_CACHE=1` evaluates every patient every time.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import yaml

from ..engine.errors import RuleError
from ..engine import parsecache
from ..engine.load import Document, format_path, load_file, parse, read_bytes
from ..engine.rulecache import load_ruleset
from ..engine.ruleset import RULE_FILE_LIMIT, SPECIAL_FILES, RuleSet

NONE = "(none)"
ASPECTS = ("step", "dose", "critical warnings", "monitoring")


@dataclass(frozen=True)
class Change:
    """One aspect of one patient's advice, old -> new."""

    aspect: str  # "step", "dose", "critical warning [rule]", "monitoring WHAT [rule]", ...
    old: str
    new: str

    @property
    def kind(self) -> str:
        """Which of ASPECTS it belongs to (a branch of an unknown fact is a step)."""
        if self.aspect.startswith("critical warning"):
            return "critical warnings"
        if self.aspect.startswith("monitoring"):
            return "monitoring"
        return "dose" if self.aspect == "dose" else "step"

    @property
    def regimen_changed(self) -> bool:
        """A dose whose regimen differs, not only the words around it (the limit it is
        checked against): only counts and orders the list, every change is shown."""
        return self.aspect == "dose" and regimen(self.old) != regimen(self.new)


def regimen(dose: str) -> str:
    """What is dispensed, as the dose text states it first: its first clause without
    the parenthesised explanations ('400 mg and 200 mg on alternate days (mean 300
    mg/day); 4.3 mg/kg/day (at most ...)' -> '400 mg and 200 mg on alternate days')."""
    return " ".join(re.sub(r"\([^()]*\)", "", dose.split("; ")[0]).split())


@dataclass
class PatientChange:
    """A patient (scenario, example or cohort record) whose advice changes."""

    name: str
    old_step: str  # "action drug", as the cohort table counts them
    new_step: str
    changes: list[Change]

    @property
    def kinds(self) -> set[str]:
        return {c.kind for c in self.changes}

    @property
    def wording_only(self) -> bool:
        """Only the words around an unchanged regimen differ (listed after the others)."""
        return self.kinds == {"dose"} and not any(c.regimen_changed for c in self.changes)


@dataclass
class RuleDiff:
    added: list[str]
    removed: list[str]
    changed: dict[str, list[str]]           # rule id -> "field: old -> new" lines
    other: list[str]                        # data files field by field, thresholds
    outcomes: list[PatientChange]           # scenarios and examples whose advice changes
    # --patients: a real cohort through both rule sets
    cohort_total: int = 0
    cohort_failed: int = 0
    cohort_changes: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    cohort_patients: list[PatientChange] = field(default_factory=list)


# ---------------------------------------------------------------- field by field

def _show(value: Any) -> str:
    """A value as a reviewer reads it in YAML: scalars plain, lists and maps in flow style."""
    if value is None:
        return NONE
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True, width=10**9,
                              allow_unicode=True, sort_keys=False).strip()
    if isinstance(value, str):
        return " ".join(value.split()) or '""'
    return str(value)


def _by_id(items: list[Any]) -> dict[str, Any] | None:
    """A list of entries that each carry a distinct id, keyed by it (rules, templates)."""
    ids = [i.get("id") for i in items if isinstance(i, dict)]
    if items and len(ids) == len(items) and all(isinstance(i, str) for i in ids) \
            and len(set(ids)) == len(ids):
        return {str(i): item for i, item in zip(ids, items)}
    return None


def flatten(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(path, value) for every leaf: maps are walked, a list of entries with ids is
    walked by id, any other list is one value (it reads better whole)."""
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from flatten(value, path + (key,))
        return
    if isinstance(data, list):
        keyed = _by_id(data)
        if keyed is not None:
            for key, value in keyed.items():
                yield from flatten(value, path + (key,))
            return
    yield path, data


def field_changes(old: Any, new: Any) -> list[tuple[tuple[Any, ...], str, str]]:
    """Every leaf whose value differs, in the new document's order: (path, old, new)."""
    a, b = dict(flatten(old)), dict(flatten(new))
    paths = list(b) + [p for p in a if p not in b]
    return [(p, _show(a.get(p)), _show(b.get(p))) for p in paths
            if a.get(p) != b.get(p) or (p in a) != (p in b)]


def _read(folder: Path, name: str) -> tuple[bytes | None, Path]:
    path = folder / name
    if not path.is_file():
        return None, path
    return read_bytes(path, RuleError, RULE_FILE_LIMIT), path


# ruleset.yaml's threshold values are reported as thresholds (with the ones drugs.yaml
# makes); the file's single top key of drugs.yaml and evidence.yaml is left out of paths.
_SINGLE_TOP = {"drugs.yaml": "drugs", "evidence.yaml": "evidence"}


def data_file_changes(old: Path, new: Path) -> list[str]:
    """The data files the rule set and the drug catalogue read (drugs.yaml, its rule
    templates, evidence, the FHIR code map, ruleset.yaml), field by field:
    `drugs.yaml:52: hydroxychloroquine.dose_limit.mg_per_kg_per_day: 5.0 -> 6.0`."""
    out = []
    for name in SPECIAL_FILES:
        raw_a, path_a = _read(old, name)
        raw_b, path_b = _read(new, name)
        if raw_a == raw_b:
            continue
        docs: list[Document | None] = [load_file(p, RuleError) if raw is not None else None
                                       for raw, p in ((raw_a, path_a), (raw_b, path_b))]
        da, db = (d.data if d is not None else None for d in docs)
        top = _SINGLE_TOP.get(name)
        for p, va, vb in field_changes(da, db):
            if name == "ruleset.yaml" and len(p) == 3 and p[0] == "thresholds" \
                    and p[2] == "value":
                continue
            doc = docs[1] if docs[1] is not None and p in docs[1].lines else docs[0]
            line = doc.line_of(p) if doc is not None else None
            shown = p[1:] if top and p[:1] == (top,) and len(p) > 1 else p
            where = f"{name}:{line}" if line else name
            out.append(f"{where}: {format_path(shown)}: {va} -> {vb}")
    return out


def rule_changes(a: RuleSet, b: RuleSet) -> dict[str, list[str]]:
    """Rules in both sets (the generated ones too) whose definition differs: each
    changed field, old -> new."""
    changed: dict[str, list[str]] = {}
    ra, rb = a.by_id, b.by_id
    for rid in sorted(set(ra) & set(rb)):
        da = ra[rid].spec.model_dump(mode="json")
        db = rb[rid].spec.model_dump(mode="json")
        da["stage"], db["stage"] = ra[rid].stage, rb[rid].stage
        if da != db:
            changed[rid] = [f"{format_path(p)}: {va} -> {vb}"
                            for p, va, vb in field_changes(da, db)]
    return changed


def threshold_changes(a: RuleSet, b: RuleSet) -> list[str]:
    """Every named threshold's value, those drugs.yaml makes too."""
    ta, tb = a.provenance.thresholds, b.provenance.thresholds
    out = []
    for name in sorted(set(ta) | set(tb)):
        va = ta[name].value if name in ta else None
        vb = tb[name].value if name in tb else None
        if va != vb:
            out.append(f"threshold {name}: {_show(va)} -> {_show(vb)}")
    return out


# ------------------------------------------------------------ a patient's advice

def _step_text(rec: dict[str, Any]) -> str:
    text = f"{rec['action']} {rec.get('drug') or ''}".strip()
    if rec.get("stops"):
        text += " (stops " + ", ".join(rec["stops"]) + ")"
    return text + f" [{rec['rule']}]"


def short_step(result: dict[str, Any]) -> str:
    """'action drug' of a result's recommendation (the cohort table counts these)."""
    rec = result["recommendation"]
    return f"{rec['action']} {rec['drug'] or ''}".strip()


def advice(result: dict[str, Any]) -> dict[str, str]:
    """What a clinician acts on, aspect by aspect: the step, its dose and regimen, the
    step of each value of an unknown fact, each rule's critical warnings, each
    monitoring item's schedule."""
    rec = result["recommendation"]
    out = {"step": _step_text(rec), "dose": rec.get("dose") or NONE}
    cond = result.get("conditional")
    if cond:
        for branch in cond["branches"]:
            b = branch["recommendation"]
            text = _step_text(b) + (f", {b['dose']}" if b.get("dose") else "")
            warned = [w["message"] for w in branch.get("warnings") or []
                      if w["severity"] == "critical"]
            if warned:
                text += "; critical: " + " | ".join(warned)
            out[f"if {cond['fact']} = {branch['value']}"] = text
    for w in result.get("warnings") or []:
        if w["severity"] == "critical":
            key = f"critical warning [{w['rule']}]"
            out[key] = (out[key] + " | " if key in out else "") + " ".join(w["message"].split())
    for m in result.get("monitoring") or []:
        key = f"monitoring {m['what']} [{m['rule']}]"
        out[key] = (out[key] + " | " if key in out else "") + m["when"]
    return out


def compare(name: str, old: dict[str, Any], new: dict[str, Any]) -> PatientChange | None:
    """The aspects of one patient's advice that differ between two results, or None."""
    return compare_advice(name, Seen.of(old), Seen.of(new))


@dataclass(frozen=True)
class Seen:
    """What the diff keeps of one result: its advice by aspect and its short step."""

    advice: dict[str, str]
    step: str

    @staticmethod
    def of(result: dict[str, Any]) -> "Seen":
        return Seen(advice(result), short_step(result))


def compare_advice(name: str, old: Seen, new: Seen) -> PatientChange | None:
    a, b = old.advice, new.advice
    keys = list(a) + [k for k in b if k not in a]
    changes = [Change(k, a.get(k, NONE), b.get(k, NONE)) for k in keys
               if a.get(k, NONE) != b.get(k, NONE)]
    if not changes:
        return None
    return PatientChange(name, old.step, new.step, changes)


# ------------------------------------------------------------------ the cache

FORMAT = 1
KEEP = 40  # rule-set versions (each a file of every patient's advice under it)
LIMIT = 5_000  # records kept per rule set (~1 kB each); a larger cohort's rest is evaluated


@lru_cache(maxsize=1)
def _code_digest() -> str:
    """The source of everything between a record's bytes and its advice, and the
    versions of Python and of the libraries that evaluate (as the rule-set cache)."""
    import sys
    from importlib.metadata import version
    import pydantic
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256(f"{FORMAT}|{sys.version}|{pydantic.VERSION}|{yaml.__version__}|"
                       f"{version('durable_rules')}".encode())
    for folder in ("engine", "fhir_r4", "cohort"):
        for path in sorted((root / folder).glob("*.py")):
            h.update(f"{folder}/{path.name}".encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


@dataclass
class Evaluated:
    """One record's patients (a FHIR Bundle may hold several): each one's source and
    what the diff keeps of its result, or its error."""

    patients: list[tuple[str, Seen | None, str | None]]


class AdviceCache:
    """Every patient's advice under one rule set, kept between runs (module docstring)."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.place = parsecache.cache_dir("diff")
        self.key = hashlib.sha256(f"{FORMAT}|{ruleset.sha256}|{_code_digest()}|"
                                  f"{dt.date.today().isoformat()}".encode()).hexdigest()
        self.entries: dict[str, Any] = {}
        self.added = 0
        if self.place is not None:
            entry = parsecache.read_trusted(self.place / f"{self.key}.json")
            if entry and entry.get("format") == FORMAT and entry.get("key") == self.key \
                    and isinstance(entry.get("records"), dict):
                self.entries = entry["records"]

    def evaluate(self, source: str, raw: bytes) -> Evaluated:
        from ..cohort.stream import Record, evaluate_all
        key = hashlib.sha256(source.encode() + b"\0" + raw).hexdigest()
        kept = self.entries.get(key)
        if kept is not None:
            try:
                return Evaluated([(s, Seen(dict(a), str(st)) if a is not None else None, e)
                                  for s, a, st, e in kept])
            except (TypeError, ValueError):
                pass
        out = Evaluated([(o.source, Seen.of(o.result) if o.result is not None else None,
                          o.error) for o in evaluate_all(Record(source, raw), self.ruleset)])
        if len(self.entries) < LIMIT:
            self.entries[key] = [(s, seen.advice if seen else None,
                                  seen.step if seen else "", e) for s, seen, e in out.patients]
            self.added += 1
        return out

    def save(self) -> None:
        if self.place is not None and self.added:
            parsecache.write_atomic(self.place, f"{self.key}.json",
                                    {"format": FORMAT, "key": self.key,
                                     "records": self.entries})
            parsecache.prune(self.place, KEEP)


# ------------------------------------------------------------------- patients

def _cases(scenarios: Path | None, examples: Path | None) -> Iterator[tuple[str, bytes]]:
    """Every scenario (each combination) and example, as a record's bytes."""
    from .scenarios import expand, scenario_files
    if scenarios and scenarios.is_dir():
        for path in scenario_files(scenarios):
            raw = read_bytes(path, RuleError)
            doc = parsecache.get(raw, str(path))
            if doc is None:
                doc = parse(raw, str(path), RuleError)
                parsecache.put(raw, doc)
            for name, record, _ in expand(doc.data):
                yield f"{path.name}: {name}", json.dumps(record, default=str).encode()
    if examples and examples.is_dir():
        for path in sorted(examples.glob("*.yaml")):
            if path.name != "expected.yaml":
                yield f"example {path.name}", path.read_bytes()


def _one(d: RuleDiff, name: str, old: Evaluated, new: Evaluated,
         cohort: bool) -> None:
    """One record's patients under both rule sets, into the diff."""
    for (source, o, o_err), (_, n, n_err) in zip(old.patients, new.patients):
        if cohort:
            d.cohort_total += 1
        if o is None or n is None:
            if cohort:
                d.cohort_failed += 1
            elif o_err != n_err:
                d.outcomes.append(PatientChange(name, "error", "error", [
                    Change("error", o_err or NONE, n_err or NONE)]))
            continue
        change = compare_advice(source if cohort else name, o, n)
        if change is None:
            continue
        if not cohort:
            d.outcomes.append(change)
            continue
        d.cohort_patients.append(change)
        if change.old_step != change.new_step:
            d.cohort_changes.setdefault((change.old_step, change.new_step),
                                        []).append(source)


def _scenario_changes(d: RuleDiff, a: AdviceCache, b: AdviceCache, scenarios: Path | None,
                      examples: Path | None) -> None:
    for name, raw in _cases(scenarios, examples):
        _one(d, name, a.evaluate(name, raw), b.evaluate(name, raw), cohort=False)


def _cohort_changes(d: RuleDiff, a: AdviceCache, b: AdviceCache,
                    patients: list[str]) -> None:
    """Every patient of a cohort through both rule sets: every patient whose advice
    changes, and old step -> new step counts with examples."""
    from ..cohort.stream import Outcome, records
    for item in records(patients):
        if isinstance(item, Outcome):
            d.cohort_total += 1
            d.cohort_failed += 1
            continue
        # a FHIR Bundle may hold several patients: each is one patient of the diff
        _one(d, item.source, a.evaluate(item.source, item.raw),
             b.evaluate(item.source, item.raw), cohort=True)


def diff(old: Path | str, new: Path | str, scenarios: Path | str | None = None,
         examples: Path | str | None = None,
         patients: list[str] | None = None) -> RuleDiff:
    """What changed between two rule sets, and every patient whose advice changes."""
    from .scenarios import default_scenarios_dir
    a, b = load_ruleset(old), load_ruleset(new)
    other = data_file_changes(Path(old), Path(new)) + threshold_changes(a, b)
    result = RuleDiff(sorted(set(b.by_id) - set(a.by_id)), sorted(set(a.by_id) - set(b.by_id)),
                      rule_changes(a, b), other, [])
    where = Path(scenarios) if scenarios else default_scenarios_dir(Path(new))
    seen_a, seen_b = AdviceCache(a), AdviceCache(b)
    _scenario_changes(result, seen_a, seen_b, where, Path(examples) if examples else None)
    if patients:
        _cohort_changes(result, seen_a, seen_b, patients)
    seen_a.save()
    seen_b.save()
    # what a clinician would act on first; a dose's wording alone last (stable order)
    result.outcomes.sort(key=lambda p: p.wording_only)
    result.cohort_patients.sort(key=lambda p: p.wording_only)
    return result


# ------------------------------------------------------------------ the report

def _patient_lines(p: PatientChange) -> list[str]:
    return [f"  {p.name}"] + [f"    {c.aspect}: {c.old} -> {c.new}" for c in p.changes]


def _counts(changes: list[PatientChange]) -> str:
    counts = {kind: sum(kind in p.kinds for p in changes) for kind in ASPECTS}
    regimen = sum(any(c.regimen_changed for c in p.changes) for p in changes)
    return ", ".join(f"{kind} {n}" + (f" (the regimen {regimen})" if kind == "dose" else "")
                     for kind, n in counts.items())


def format_diff(d: RuleDiff) -> str:
    out = []
    out += [f"+ added   {r}" for r in d.added]
    out += [f"- removed {r}" for r in d.removed]
    out += [f"~ changed {r}: {line}" for r, lines in d.changed.items() for line in lines]
    out += [f"~ {o}" for o in d.other]
    if not (d.added or d.removed or d.changed or d.other):
        out.append("no rule changes")
    out.append("")
    if d.outcomes:
        out.append(f"{len(d.outcomes)} scenarios and examples get different advice "
                   f"({_counts(d.outcomes)}), old -> new:")
        for p in d.outcomes:
            out += _patient_lines(p)
    else:
        out.append("no scenario or example changes its step, dose, critical warnings or "
                   "monitoring")
    if d.cohort_total:
        out.append("")
        out.append(f"cohort: {len(d.cohort_patients)} of {d.cohort_total} patients get "
                   f"different advice ({_counts(d.cohort_patients)})"
                   + (f"; {d.cohort_failed} could not be read or evaluated"
                      if d.cohort_failed else ""))
        if d.cohort_changes:
            out.append(f"  {'old step':<34} {'new step':<34} {'patients':>8}  examples")
            for (so, sn), who in sorted(d.cohort_changes.items(),
                                        key=lambda kv: (-len(kv[1]), kv[0])):
                out.append(f"  {so:<34} {sn:<34} {len(who):>8}  {', '.join(who[:3])}")
        if d.cohort_patients:
            out.append("every patient whose advice changes, old -> new:")
            for p in d.cohort_patients:
                out += _patient_lines(p)
    return "\n".join(out) + "\n"
