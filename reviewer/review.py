"""Reviewer tooling as a library: check, list, show (the CLI only formats and exits)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import analysis
from .diff import RuleDiff, diff, format_diff  # noqa: F401  (the library's names)
from .scenarios import default_scenarios_dir
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
    scenarios: str | None = None  # how many scenarios ran, how many fail

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
          deep: bool = False, scenarios: Path | str | None = None,
          run_scenarios: bool = True) -> CheckReport:
    """Every finding of a rule set: format and semantic errors, then warnings from the
    static analysis, the review dates, the scenarios (a rule that now decides a
    scenario it was not written for) and a search of the patient space (deep: with
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
    ran = None
    if ruleset is not None and run_scenarios:
        from .outcomes import scenario_findings
        where = Path(scenarios) if scenarios else default_scenarios_dir(path)
        if not where.is_dir():
            raise RuleError("no scenario folder found (give --scenarios DIR)", str(where))
        found_sc, ran = scenario_findings(ruleset, where)
        findings = findings + found_sc
    if ruleset is not None:
        from ..engine.signoff import ruleset_units, summary
        signoff = summary(ruleset.provenance.status, ruleset_units(ruleset))
        static = analysis.static_findings(ruleset)
        findings = findings + static + analysis.review_due(ruleset, today or dt.date.today())
        findings += _version_findings(ruleset, path)
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
    return CheckReport(str(path), findings, ruleset, most, signoff, searched, ran)


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
    if report.scenarios:
        lines.append(report.scenarios)
    lines.append(f"{len(report.errors)} errors, {len(report.warnings)} warnings in "
                 f"{report.folder}")
    return "\n".join(lines) + "\n"


def _version_findings(ruleset: RuleSet, path: Path) -> list[Finding]:
    from .versionlock import version_findings
    meta = load_file(path / "ruleset.yaml", RuleError)
    return version_findings(ruleset, meta.file, meta.line_of(("version",)))


def lock(folder: Path | str | None = None) -> tuple[Path, str, str, bool]:
    """Record the version with its content hash (reviewer/versionlock.py)."""
    from .versionlock import write_lock
    rs = load_ruleset(_folder(folder))
    path, sha, added = write_lock(rs)
    return path, rs.provenance.version, sha, added


def list_rules(folder: Path | str | None = None, fmt: str = "text",
               all_rules: bool = False) -> str:
    """The active rules, the generated ones too: a readable table with the file and
    line each is written at, or (json) every rule with everything that defines it, so
    that two rule sets compare byte for byte. all_rules: the retired and draft rules
    too, with their status."""
    from .rulesinfo import inactive_rules
    rs = load_ruleset(_folder(folder))
    ordered = sorted(rs.rules, key=lambda r: (r.stage, -r.spec.priority, r.id))
    others = inactive_rules(rs) if all_rules else []
    if fmt == "json":
        import json
        rows = [{"id": r.id, "stage": r.stage, "kind": r.kind,
                 "file": Path(r.file).name, "line": r.line,
                 "spec": r.spec.model_dump(mode="json")} for r in ordered]
        rows += [{"id": x.spec.id, "stage": x.stage, "kind": x.spec.then.kind,
                  "file": Path(x.file).name, "line": x.line, "status": x.spec.status,
                  "spec": x.spec.model_dump(mode="json")}
                 for x in sorted(others, key=lambda x: (x.stage, x.spec.id))]
        return json.dumps(rows, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    head = ("ID", "STAGE", "PRI", "KIND", "FILE") + (("STATUS",) if all_rules else ())
    rows = [head + ("TITLE",)]
    merged = [(r.stage, -r.spec.priority, r.id, r.spec, r.file, r.line) for r in ordered]
    merged += [(x.stage, -x.spec.priority, x.spec.id, x.spec, x.file, x.line)
               for x in others]
    for stage, _, rid, spec, file, line in sorted(merged, key=lambda m: m[:3]):
        where = f"{Path(file).name}:{line}" if line else Path(file).name
        status = (spec.status,) if all_rules else ()
        rows.append((rid, stage, str(spec.priority), spec.then.kind, where) + status
                    + (spec.title,))
    n = len(head)
    width = [max(len(row[i]) for row in rows) for i in range(n)]
    return "\n".join("  ".join(c.ljust(width[i]) if i < n else c for i, c in enumerate(row))
                     for row in rows) + "\n"


def show_rule(rule_id: str, folder: Path | str | None = None) -> str:
    """One rule as written, with its evidence in full and its place among the rules it
    competes with; a retired or draft rule too, marked so."""
    from .rulesinfo import inactive_rules, rank
    rs = load_ruleset(_folder(folder))
    rule = rs.by_id.get(rule_id)
    if rule is None:
        found = [x for x in inactive_rules(rs) if x.spec.id == rule_id]
        if not found:
            raise RuleError(f"no rule with id '{rule_id}' (active, retired or draft)",
                            rs.folder)
        x = found[0]
        what = ("RETIRED: kept for the record, never run" if x.spec.status == "retired"
                else "DRAFT: checked by `rules check`, never run")
        return "\n".join([f"{x.spec.id}  ({x.file}:{x.line})  {what}", _body(x.spec),
                          *_evidence(x.spec, rs)]) + "\n"
    out = [f"{rule.id}  ({rule.file}:{rule.line})", _body(rule.spec), *_evidence(rule.spec, rs)]
    ranked = rank(rule, rs)
    if ranked.outranks or ranked.outranked_by or ranked.ties:
        out.append(f"priority {rule.spec.priority} among the rules that can compete with it "
                   "(same stage or drug; the highest priority of those that fire wins):")
        for label, rows in (("outranked by", ranked.outranked_by),
                            ("same priority (firing together with different steps: "
                             "a `rules check` conflict)",
                             ranked.ties),
                            ("outranks", ranked.outranks)):
            if rows:
                out.append(f"  {label}:")
                out += [f"    {o.spec.priority:>3}  {o.id}  ({why})" for o, why in rows]
    return "\n".join(out) + "\n"


def _body(spec) -> str:
    body = spec.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    body["then"] = spec.then.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(body, sort_keys=False, width=88, allow_unicode=True).rstrip()


def _evidence(spec, rs: RuleSet) -> list[str]:
    out = ["evidence:"]
    for key in spec.evidence:
        entry = rs.evidence.get(key)
        out.append(f"  [{key}] {' '.join(entry.citation.split())}" if entry else
                   f"  [{key}] (not in evidence.yaml)")
    return out


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


# ------------------------------------------------------------------------ graph

def _node(name: str) -> str:
    return name.replace(".", "_").replace("-", "_")


GENERIC = {"active_disease", "severe_disease"}


def _mermaid_label(text: str) -> str:
    """An edge label Mermaid reads as text whatever the condition holds."""
    for a, b in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(a, b)
    return f'"{text}"'


def _dot_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


STAGES = ("topical", "antimalarial", "bridge", "immunosuppressant", "refractory",
          "specialist", "monitoring")


def graph(folder: Path | str | None = None, fmt: str = "mermaid", drug: str | None = None,
          stage: str | None = None) -> str:
    """The ladder as a flowchart: stages, drugs, what moves a patient on, exclusions.
    Each edge carries its rule (id, priority) and the rule's whole condition. drug or
    stage: only the edges into that drug (or that stage's drugs, and the rules written
    for that stage), with every derivation they rest on."""
    from ..engine.conditions import describe
    rs = load_ruleset(_folder(folder))
    if drug is not None and drug not in rs.drugs:
        raise RuleError(f"--drug: '{drug}' is not in drugs.yaml (one of: "
                        f"{', '.join(sorted(rs.drugs))})", rs.folder)
    if stage is not None and stage not in STAGES + ("general", "safety"):
        raise RuleError(f"--stage: '{stage}' is not a stage (one of: "
                        f"{', '.join(STAGES + ('general', 'safety'))})", rs.folder)
    # from, to, label, style, the rule's stage
    edges: list[tuple[str, str, str, str, str]] = []
    for r in rs.rules:
        cond = describe(r.condition)
        rec = r.spec.then.recommend
        if rec and rec.drug and rec.action in ("start", "add", "switch", "reintroduce"):
            gates = [n for n in dict.fromkeys(r.condition.facts()) if n in rs.derived
                     and not n.endswith("_considered")]
            specific = [g for g in gates if g not in GENERIC] or gates or ["patient"]
            edges.append((specific[0], rec.drug,
                          f"{rec.action} p{r.spec.priority} {r.id}: {cond}", "solid",
                          r.stage))
        if r.spec.then.derive:
            # from each derived fact it rests on; from the patient's own facts if none
            sources = [n for n in dict.fromkeys(r.condition.facts()) if n in rs.derived]
            for n in sources or ["patient"]:
                edges.append((n, r.spec.then.derive, f"{r.id}: {cond}", "solid", r.stage))
    for r in rs.rules:
        for excluded in r.spec.then.exclude or []:
            edges.append((r.id, excluded, f"excludes: {describe(r.condition)}", "dashed",
                          r.stage))
    unique = list(dict.fromkeys(edges))
    if drug is not None or stage is not None:
        unique = _upstream(unique, rs, drug, stage)
    drugs_by_stage: dict[str, set[str]] = {}
    for e in unique:
        if e[1] in rs.drugs and e[3] == "solid":
            drugs_by_stage.setdefault(rs.drugs[e[1]].stage, set()).add(e[1])
    safety = sorted({e[0] for e in unique if e[3] == "dashed"})
    facts = sorted({e[0] for e in unique if e[3] == "solid"} | {e[1] for e in unique
                   if e[1] in rs.derived})
    shown = {d for ds in drugs_by_stage.values() for d in ds}
    loose = sorted({e[1] for e in unique if e[1] in rs.drugs and e[1] not in shown})
    if fmt == "dot":
        out = ["digraph ladder {", "  rankdir=LR; node [fontsize=10];"]
        for st in STAGES:
            if st in drugs_by_stage:
                out.append(f'  subgraph cluster_{st} {{ label="{st}";')
                out += [f'    {_node(d)} [label="{d}", shape=box];'
                        for d in sorted(drugs_by_stage[st])]
                out.append("  }")
        out += [f'  {_node(d)} [label="{d}", shape=box];' for d in loose]
        out += [f'  {_node(f)} [label="{f}", shape=ellipse];' for f in facts]
        out += [f'  {_node(s)} [label="{s}", shape=note, color=red];' for s in safety]
        for a, b, label, style, _ in unique:
            out.append(f'  {_node(a)} -> {_node(b)} [label="{_dot_label(label)}", '
                       f'style={style}' + (", color=red" if style == "dashed" else "") + "];")
        out.append("}")
        return "\n".join(out) + "\n"
    out = ["flowchart LR"]
    for st in STAGES:
        if st in drugs_by_stage:
            out.append(f"  subgraph {st}")
            out += [f"    {_node(d)}[{d}]" for d in sorted(drugs_by_stage[st])]
            out.append("  end")
    out += [f"  {_node(d)}[{d}]" for d in loose]
    out += [f"  {_node(f)}([{f}])" for f in facts]
    out += [f"  {_node(s)}{{{{{s}}}}}" for s in safety]
    for a, b, label, style, _ in unique:
        arrow = "-.->" if style == "dashed" else "-->"
        out.append(f"  {_node(a)} {arrow}|{_mermaid_label(label)}| {_node(b)}")
    return "\n".join(out) + "\n"


def _upstream(edges: list[tuple[str, str, str, str, str]], rs: RuleSet, drug: str | None,
              stage: str | None) -> list[tuple[str, str, str, str, str]]:
    """The edges into the drug (or the stage's drugs, and the edges of rules written
    for the stage), and every derivation edge they rest on, transitively."""
    def seed(e: tuple[str, str, str, str, str]) -> bool:
        if drug is not None:
            return e[1] == drug
        return (e[1] in rs.drugs and rs.drugs[e[1]].stage == stage) or e[4] == stage
    keep = {e for e in edges if seed(e)}
    needed = {e[0] for e in keep}
    while True:
        more = {e for e in edges if e not in keep and e[1] in needed and e[1] in rs.derived}
        if not more:
            break
        keep |= more
        needed |= {e[0] for e in more}
    return [e for e in edges if e in keep]
