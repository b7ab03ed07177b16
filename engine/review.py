"""Reviewer tooling as a library: check, list, show (the CLI only formats and exits)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import analysis
from .errors import RuleError
from .ruleset import Finding, RuleSet, check_folder, default_rules_dir, load_ruleset


@dataclass(frozen=True)
class CheckReport:
    folder: str
    findings: list[Finding]
    ruleset: RuleSet | None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]


def _folder(folder: Path | str | None) -> Path:
    return Path(folder) if folder else default_rules_dir()


def check(folder: Path | str | None = None, samples: int = 1500,
          today: dt.date | None = None) -> CheckReport:
    """Every finding of a rule set: format and semantic errors, then warnings from the
    static analysis, the review dates and a search of the patient space."""
    path = _folder(folder)
    ruleset, findings = check_folder(path)
    if ruleset is not None:
        static = analysis.static_findings(ruleset)
        findings = findings + static + analysis.review_due(ruleset, today or dt.date.today())
        if samples and not any(f.severity == "error" for f in static):
            found = analysis.search(ruleset, samples)
            findings += analysis.search_findings(ruleset, found)
    findings = sorted(findings, key=lambda f: (f.severity != "error", f.file or "",
                                               f.line or 0, f.code))
    return CheckReport(str(path), findings, ruleset)


def format_findings(report: CheckReport) -> str:
    lines = [f"{f.severity}: {f.code}: {f}" for f in report.findings]
    errors = [f for f in report.findings if f.severity == "error"]
    if errors and report.ruleset is None:
        lines.append("the rule set cannot be loaded; `cledecide evaluate` refuses it too")
    lines.append(f"{len(report.errors)} errors, {len(report.warnings)} warnings in "
                 f"{report.folder}")
    return "\n".join(lines) + "\n"


def list_rules(folder: Path | str | None = None) -> str:
    """A readable table of the active rules."""
    rs = load_ruleset(_folder(folder))
    rows = [("ID", "STAGE", "PRI", "KIND", "TITLE")]
    for r in sorted(rs.rules, key=lambda r: (r.stage, -r.spec.priority, r.id)):
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
