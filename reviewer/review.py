"""Reviewer tooling as a library: check, list, show (the CLI only formats and exits)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import analysis
from ..engine.errors import RuleError
from ..engine.load import load_file
from ..engine.rulecache import load_ruleset
from ..engine.ruleset import Finding, RuleSet, check_folder, default_rules_dir


@dataclass(frozen=True)
class CheckReport:
    folder: str
    findings: list[Finding]
    ruleset: RuleSet | None
    most_matches: int | None = None  # rules matching one patient fact at once (max seen)
    signoff: str | None = None  # the status and the review states, in one line
    searched: str | None = None  # what the search of the patient space looked for

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]


def _folder(folder: Path | str | None) -> Path:
    return Path(folder) if folder else default_rules_dir()


# The default check is quick (a few seconds on the shipped rules): errors, the static
# analysis, sign-off and review dates, and a search of SAMPLES patients for conflicts,
# gaps and durable_rules' limits. The deep search (`rules check --deep`) looks at more
# patients, asks hypothesis for patients that refute each rule it did not see fire or
# win, and reports the rules it then finds unreached, masked or redundant.
SAMPLES, DEEP_SAMPLES, DEEP_HYPOTHESIS = 300, 1500, 200


def check(folder: Path | str | None = None, samples: int | None = None,
          today: dt.date | None = None, hypothesis: int | None = None,
          deep: bool = False) -> CheckReport:
    """Every finding of a rule set: format and semantic errors, then warnings from the
    static analysis, the review dates and a search of the patient space (deep: with
    hypothesis, and the rules never reached, masked or redundant). Hypothesis examples
    asked for (hypothesis > 0) mean the deep search."""
    deep = deep or bool(hypothesis)
    if samples is None:
        samples = DEEP_SAMPLES if deep else SAMPLES
    if hypothesis is None:
        hypothesis = DEEP_HYPOTHESIS if deep else 0
    path = _folder(folder)
    ruleset, findings = check_folder(path)
    from ..fhir_r4.codemap import check_file
    findings = findings + [Finding("error", "fhir-map", m, f, line, fld)
                           for m, f, line, fld in check_file(path)]
    most = None
    signoff = None
    if ruleset is not None:
        from ..engine.signoff import ruleset_units, summary
        signoff = summary(ruleset.provenance.status, ruleset_units(ruleset))
        static = analysis.static_findings(ruleset)
        findings = findings + static + analysis.review_due(ruleset, today or dt.date.today())
        if samples and not any(f.severity == "error" for f in static):
            failures: list[analysis.Failure] = []
            found = analysis.search(ruleset, samples, failures=failures)
            if failures:
                f = failures[0]
                findings.append(Finding(
                    "error", "engine-failure", f"{len(failures)} of {samples} searched "
                    f"patients cannot be evaluated: {f.message} (first: patient "
                    f"{f.record['id']}, {len(f.record['treatments'])} courses)",
                    str(path)))
            findings += analysis.search_findings(ruleset, found, hypothesis, deep)
            most, limit = analysis.match_limit_findings(ruleset, found)
            findings += limit
    findings = sorted(findings, key=lambda f: (f.severity != "error", f.code != "format",
                                               f.file or "", f.line or 0, f.code))
    searched = None
    if ruleset is not None and samples:
        searched = (f"deep search: {samples} patients and {hypothesis} hypothesis examples "
                    "per finding (conflicts, gaps, rules never reached, masked or "
                    "redundant)" if deep else
                    f"quick search: {samples} patients (conflicts, gaps); `rules check "
                    "--deep` also looks for rules never reached, masked or redundant")
    return CheckReport(str(path), findings, ruleset, most, signoff, searched)


def format_findings(report: CheckReport) -> str:
    lines = [f"{f.severity}: {f.code}: {f}" for f in report.findings]
    errors = [f for f in report.findings if f.severity == "error"]
    if errors and report.ruleset is None:
        lines.append("the rule set cannot be loaded; `cledecide evaluate` refuses it too")
    if report.most_matches is not None:
        lines.append(f"durable_rules load: at most {report.most_matches} rules matched one "
                     f"patient fact at once in the search (it fails, error 303, past "
                     f"about 64 distinct ones)")
    if report.signoff:
        lines.append(report.signoff)
    if report.searched:
        lines.append(report.searched)
    lines.append(f"{len(report.errors)} errors, {len(report.warnings)} warnings in "
                 f"{report.folder}")
    return "\n".join(lines) + "\n"


def list_rules(folder: Path | str | None = None, fmt: str = "text") -> str:
    """The active rules, the generated ones too: a readable table, or (json) every rule
    with everything that defines it, so that two rule sets compare byte for byte."""
    rs = load_ruleset(_folder(folder))
    ordered = sorted(rs.rules, key=lambda r: (r.stage, -r.spec.priority, r.id))
    if fmt == "json":
        import json
        return json.dumps([{"id": r.id, "stage": r.stage, "kind": r.kind,
                            "file": Path(r.file).name, "line": r.line,
                            "spec": r.spec.model_dump(mode="json")} for r in ordered],
                          indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    rows = [("ID", "STAGE", "PRI", "KIND", "TITLE")]
    for r in ordered:
        rows.append((r.id, r.stage, str(r.spec.priority), r.spec.then.kind, r.spec.title))
    width = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(width[i]) if i < 4 else c for i, c in enumerate(row))
                     for row in rows) + "\n"


def show_rule(rule_id: str, folder: Path | str | None = None) -> str:
    """One rule as written, with its evidence in full."""
    rs = load_ruleset(_folder(folder))
    rule = rs.by_id.get(rule_id)
    if rule is None:
        raise RuleError(f"no active rule with id '{rule_id}'", rs.folder)
    body = rule.spec.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    body["then"] = rule.spec.then.model_dump(mode="json", exclude_none=True)
    out = [f"{rule.id}  ({rule.file}:{rule.line})",
           yaml.safe_dump(body, sort_keys=False, width=88, allow_unicode=True).rstrip(),
           "evidence:"]
    for key in rule.spec.evidence:
        out.append(f"  [{key}] {' '.join(rs.evidence[key].citation.split())}")
    return "\n".join(out) + "\n"


def default_scenarios_dir(rules_folder: Path) -> Path:
    """scenarios/ beside the rules folder, else the repository's or package's copy."""
    candidate = rules_folder.parent / "scenarios"
    if candidate.is_dir():
        return candidate
    from importlib.resources import files
    return Path(str(files("cledecide.scenarios")))


def test(folder: Path | str | None = None, scenarios: Path | str | None = None):
    """Run scenario files against a rule set (see reviewer/scenarios.py)."""
    from .scenarios import run_scenarios
    rules_folder = _folder(folder)
    ruleset = load_ruleset(rules_folder)
    where = Path(scenarios) if scenarios else default_scenarios_dir(rules_folder)
    if not where.is_dir():
        raise RuleError("no scenario folder found (give --scenarios DIR)", str(where))
    return run_scenarios(where, ruleset)


def format_test(report, coverage: bool = True) -> str:
    from .scenarios import format_report
    return format_report(report, coverage)


# ------------------------------------------------------------------------- diff

@dataclass
class RuleDiff:
    added: list[str]
    removed: list[str]
    changed: dict[str, list[str]]          # rule id -> changed fields
    other: list[str]                        # thresholds, drugs, evidence, provenance
    outcomes: list[tuple[str, str, str]]    # case, old step, new step
    # --patients: a real cohort through both rule sets
    cohort_total: int = 0
    cohort_failed: int = 0
    cohort_changes: dict[tuple[str, str], list[str]] = field(default_factory=dict)


def _step(result: dict) -> str:
    """'action drug' of a result's recommendation (the cohort table compares these)."""
    rec = result["recommendation"]
    return f"{rec['action']} {rec['drug'] or ''}".strip()


def _cases(scenarios: Path | None, examples: Path | None):
    from .scenarios import expand, scenario_files
    if scenarios and scenarios.is_dir():
        for path in scenario_files(scenarios):
            for name, record, _ in expand(load_file(path, RuleError).data):
                yield f"{path.name}: {name}", record
    if examples and examples.is_dir():
        for path in sorted(examples.glob("*.yaml")):
            if path.name != "expected.yaml":
                yield f"example {path.name}", load_file(path).data


def _cohort_changes(d: "RuleDiff", a: RuleSet, b: RuleSet,
                    patients: list[str]) -> None:
    """Every patient of a cohort through both rule sets: old step -> new step counts,
    with up to three example patients (their sources) per cell."""
    from ..cohort.stream import Outcome, evaluate_all, records
    for item in records(patients):
        if isinstance(item, Outcome):
            d.cohort_total += 1
            d.cohort_failed += 1
            continue
        # a FHIR Bundle may hold several patients: each is one row of the table
        for old, new in zip(evaluate_all(item, a), evaluate_all(item, b)):
            d.cohort_total += 1
            if old.result is None or new.result is None:
                d.cohort_failed += 1
                continue
            so, sn = _step(old.result), _step(new.result)
            if so != sn:
                d.cohort_changes.setdefault((so, sn), []).append(old.source)


def diff(old: Path | str, new: Path | str, scenarios: Path | str | None = None,
         examples: Path | str | None = None,
         patients: list[str] | None = None) -> RuleDiff:
    """What changed between two rule sets, and for which patients the step changes."""
    import json
    from ..engine import evaluate as ev_mod
    from ..engine.compile import compile_rules
    from ..engine.decide import decide
    from ..engine.load import parse
    from ..engine.validate import validate_patient
    a, b = load_ruleset(old), load_ruleset(new)
    ra, rb = a.by_id, b.by_id
    changed: dict[str, list[str]] = {}
    for rid in sorted(set(ra) & set(rb)):
        da = ra[rid].spec.model_dump(mode="json")
        db = rb[rid].spec.model_dump(mode="json")
        fields = [k for k in da if da[k] != db.get(k)]
        if fields:
            changed[rid] = fields
    other = []
    ta, tb = a.provenance.thresholds, b.provenance.thresholds
    for name in sorted(set(ta) | set(tb)):
        va = ta[name].value if name in ta else None
        vb = tb[name].value if name in tb else None
        if va != vb:
            other.append(f"threshold {name}: {va} -> {vb}")
    for name in sorted(set(a.drugs) | set(b.drugs)):
        if (a.drugs.get(name) and a.drugs[name].model_dump()) != \
                (b.drugs.get(name) and b.drugs[name].model_dump()):
            other.append(f"drug {name} changed in drugs.yaml")
    if set(a.evidence) != set(b.evidence):
        other.append("evidence keys: " + ", ".join(
            [f"+{k}" for k in sorted(set(b.evidence) - set(a.evidence))] +
            [f"-{k}" for k in sorted(set(a.evidence) - set(b.evidence))]))
    if a.provenance.version != b.provenance.version:
        other.append(f"version {a.provenance.version} -> {b.provenance.version}")
    ca, cb = compile_rules(a), compile_rules(b)
    outcomes = []
    where = Path(scenarios) if scenarios else default_scenarios_dir(Path(new))
    ex_dir = Path(examples) if examples else None
    for name, record in _cases(where, ex_dir):
        patient = validate_patient(parse(json.dumps(record, default=str).encode(), name))
        steps = []
        for rs, comp in ((a, ca), (b, cb)):
            e = ev_mod.evaluate(patient, comp)
            d = decide(rs, e)
            rec = d.recommendation
            steps.append(f"{rec.action} {rec.drug or ''}".strip() + f" [{rec.rule_id}]")
        if steps[0] != steps[1]:
            outcomes.append((name, steps[0], steps[1]))
    result = RuleDiff(sorted(set(rb) - set(ra)), sorted(set(ra) - set(rb)), changed, other,
                      outcomes)
    if patients:
        _cohort_changes(result, a, b, patients)
    return result


def format_diff(d: RuleDiff) -> str:
    out = []
    out += [f"+ added   {r}" for r in d.added]
    out += [f"- removed {r}" for r in d.removed]
    out += [f"~ changed {r}: {', '.join(f)}" for r, f in d.changed.items()]
    out += [f"~ {o}" for o in d.other]
    if not (d.added or d.removed or d.changed or d.other):
        out.append("no rule changes")
    out.append("")
    if d.outcomes:
        out.append(f"{len(d.outcomes)} patients get a different step (old | new):")
        for name, old, new in d.outcomes:
            out.append(f"  {name}")
            out.append(f"    old: {old}")
            out.append(f"    new: {new}")
    else:
        out.append("no scenario or example changes its step")
    if d.cohort_total:
        changed = sum(len(v) for v in d.cohort_changes.values())
        out.append("")
        out.append(f"cohort: {changed} of {d.cohort_total} patients change step"
                   + (f" ({d.cohort_failed} could not be read or evaluated)"
                      if d.cohort_failed else ""))
        if d.cohort_changes:
            out.append(f"  {'old step':<34} {'new step':<34} {'patients':>8}  examples")
            for (so, sn), who in sorted(d.cohort_changes.items(),
                                        key=lambda kv: (-len(kv[1]), kv[0])):
                out.append(f"  {so:<34} {sn:<34} {len(who):>8}  {', '.join(who[:3])}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------ graph

def _node(name: str) -> str:
    return name.replace(".", "_").replace("-", "_")


GENERIC = {"active_disease", "severe_disease"}


def graph(folder: Path | str | None = None, fmt: str = "mermaid") -> str:
    """The ladder as a flowchart: stages, drugs, what moves a patient on, exclusions."""
    rs = load_ruleset(_folder(folder))
    stages = ["topical", "antimalarial", "bridge", "immunosuppressant", "refractory",
              "specialist", "monitoring"]
    edges: list[tuple[str, str, str, str]] = []  # from, to, label, style
    drugs_by_stage: dict[str, set[str]] = {}
    for r in rs.rules:
        rec = r.spec.then.recommend
        if rec and rec.drug and rec.action in ("start", "add", "switch", "reintroduce"):
            drugs_by_stage.setdefault(rs.drugs[rec.drug].stage, set()).add(rec.drug)
            gates = [n for n in dict.fromkeys(r.condition.facts()) if n in rs.derived
                     and not n.endswith("_considered")]
            specific = [g for g in gates if g not in GENERIC] or gates or ["patient"]
            for g in specific[:1]:
                edges.append((g, rec.drug, f"{rec.action} p{r.spec.priority}", "solid"))
        if r.spec.then.derive:
            for n in dict.fromkeys(r.condition.facts()):
                if n in rs.derived:
                    edges.append((n, r.spec.then.derive, "", "solid"))
    for r in rs.rules:
        for drug in r.spec.then.exclude or []:
            edges.append((r.id, drug, "excludes", "dashed"))
    safety = sorted({e[0] for e in edges if e[3] == "dashed"})
    facts = sorted({e[0] for e in edges if e[3] == "solid"} | {e[1] for e in edges
                   if e[1] in rs.derived})
    unique = list(dict.fromkeys(edges))
    if fmt == "dot":
        out = ["digraph ladder {", "  rankdir=LR; node [fontsize=10];"]
        for stage in stages:
            if stage in drugs_by_stage:
                out.append(f'  subgraph cluster_{stage} {{ label="{stage}";')
                out += [f'    {_node(d)} [label="{d}", shape=box];'
                        for d in sorted(drugs_by_stage[stage])]
                out.append("  }")
        out += [f'  {_node(f)} [label="{f}", shape=ellipse];' for f in facts]
        out += [f'  {_node(s)} [label="{s}", shape=note, color=red];' for s in safety]
        for a, b, label, style in unique:
            out.append(f'  {_node(a)} -> {_node(b)} [label="{label}", style={style}'
                       + (", color=red" if style == "dashed" else "") + "];")
        out.append("}")
        return "\n".join(out) + "\n"
    out = ["flowchart LR"]
    for stage in stages:
        if stage in drugs_by_stage:
            out.append(f"  subgraph {stage}")
            out += [f"    {_node(d)}[{d}]" for d in sorted(drugs_by_stage[stage])]
            out.append("  end")
    out += [f"  {_node(f)}([{f}])" for f in facts]
    out += [f"  {_node(s)}{{{{{s}}}}}" for s in safety]
    for a, b, label, style in unique:
        arrow = "-.->" if style == "dashed" else "-->"
        out.append(f"  {_node(a)} {arrow}" + (f"|{label}|" if label else "") + f" {_node(b)}")
    return "\n".join(out) + "\n"
