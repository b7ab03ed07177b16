"""`cledecide rules site OUT/`: the rule set as a static HTML rulebook that opens from
disk, with no server and no network (every asset is written into OUT/).

Pages: home (status, hash, sign-off counts, the ladder), one per rule, drug entry and
threshold, the evidence, the rule index, and the changes since the last approved
version. Templates are Jinja2 (autoescaping on: rule text is data, never markup).
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..engine import vocabulary as V
from ..engine.errors import CledecideError, RuleError
from ..engine.load import load_file
from ..engine.prose import filled
from ..engine.rulecache import load_ruleset
from ..engine.ruleset import (RULE_FILE_LIMIT, SPECIAL_FILES, Rule, RuleSet, RuleSpec,
                              default_rules_dir)
from ..engine.signoff import (KINDS, STATES, Unit, counts, is_approved,
                              status_label, units)
from .exercise import Run, run_all
from .ladder import ladder_svg
from .plandefinition import citation_links
from ..engine.words import condition_tree, condition_words, thresholds_in, top_parts

MAX_SCENARIOS_PER_RULE = 40


@dataclass
class SiteReport:
    out: Path
    pages: int
    counts: dict[str, dict[str, int]]
    status: str
    scenarios: int
    failed: int
    changes: str
    rules: int = 0
    drugs: int = 0
    thresholds: int = 0
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------- the units

def folder_units(folder: Path, ruleset: RuleSet) -> dict[tuple[str, str], Unit]:
    """Every reviewable unit, the inactive rules too, with FILE:LINE."""
    rules: list[tuple[RuleSpec, str, bool]] = []
    where: dict[tuple[str, str], tuple[str | None, int | None]] = {}
    for path in sorted(folder.glob("*.yaml")):
        if path.name in SPECIAL_FILES:
            continue
        doc = load_file(path, RuleError, RULE_FILE_LIMIT)
        for i, item in enumerate(doc.data.get("rules") or []):
            # as the engine reads it: threshold placeholders filled (engine/prose.py)
            spec = RuleSpec.model_validate(filled(item, ruleset.thresholds)[0], context={
                "drugs": tuple(ruleset.drugs), "catalogue": ruleset.drugs})
            if ("rule", spec.id) in where:
                continue
            where["rule", spec.id] = (doc.file, doc.line_of(("rules", i, "id")))
            rules.append((spec, spec.stage or doc.data["stage"], spec.status == "active"))
    for name, top in (("drugs.yaml", "drugs"), ("ruleset.yaml", "thresholds")):
        doc = load_file(folder / name, RuleError, RULE_FILE_LIMIT)
        for key in (doc.data.get(top) or {}):
            where["drug" if top == "drugs" else "threshold", key] = \
                (doc.file, doc.line_of((top, key)))
    found = units(rules, ruleset.drugs, ruleset.provenance.thresholds,
                  lambda k, n: where.get((k, n), (None, None)))
    return {(u.kind, u.id): u for u in found}


# ---------------------------------------------------------------- the changes

def _git_rules(folder: Path, ref: str, dest: Path) -> Path:
    """The rules folder as it was at a git ref, extracted into dest."""
    def git(*args: str) -> str:
        proc = subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                              text=True, timeout=60)
        if proc.returncode != 0:
            raise RuleError(f"git {' '.join(args)}: {proc.stderr.strip() or 'failed'}",
                            str(folder))
        return proc.stdout.strip()
    top = Path(git("rev-parse", "--show-toplevel"))
    rel = folder.resolve().relative_to(top.resolve()).as_posix()
    proc = subprocess.run(["git", "-C", str(top), "archive", "--format=tar", ref, rel],
                          capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise RuleError(f"git archive {ref}: {proc.stderr.decode(errors='replace').strip()}",
                        str(folder))
    tar_path = dest / "rules.tar"
    tar_path.write_bytes(proc.stdout)
    with tarfile.open(tar_path) as tar:
        tar.extractall(dest / "old", filter="data")
    return dest / "old" / rel


def last_approved_ref(folder: Path) -> str | None:
    """The newest commit whose ruleset.yaml says approved or active (None: none yet, or
    not a git checkout)."""
    try:
        log = subprocess.run(["git", "-C", str(folder), "log", "--format=%H", "--",
                              "ruleset.yaml"], capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    if log.returncode != 0:
        return None
    import yaml
    for commit in log.stdout.split():
        show = subprocess.run(["git", "-C", str(folder), "show", f"{commit}:./ruleset.yaml"],
                              capture_output=True, text=True, timeout=60)
        try:
            status = (yaml.safe_load(show.stdout) or {}).get("status")
        except yaml.YAMLError:
            continue
        if show.returncode == 0 and is_approved(str(status)):
            return commit
    return None


def changes(folder: Path, since: str | None, patients: list[str] | None,
            scenarios: Path) -> dict[str, Any]:
    """What the changes page shows: the diff against a folder or git ref."""
    from ..reviewer.review import diff
    base: dict[str, Any] = {"since": since, "auto": since is None, "none": False,
                            "error": None}
    if since is None:
        since = last_approved_ref(folder)
        base["since"] = since
        if since is None:
            base["none"] = True
            return base
    with tempfile.TemporaryDirectory(prefix="cledecide-site-") as tmp:
        old = Path(since)
        if not old.is_dir():
            old = _git_rules(folder, since, Path(tmp))
        try:
            d = diff(old, folder, scenarios, None, patients)
        except CledecideError as exc:
            base["error"] = str(exc)
            return base
    base["diff"] = d
    base["cohort_rows"] = sorted(((so, sn, who) for (so, sn), who in d.cohort_changes.items()),
                                 key=lambda r: (-len(r[2]), r[0], r[1]))
    base["cohort_changed"] = len(d.cohort_patients)
    return base


# ----------------------------------------------------------------- the pages

def _derivers(ruleset: RuleSet) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in ruleset.rules:
        if r.spec.then.derive:
            out.setdefault(r.spec.then.derive, []).append(r.id)
    return out


def _drug_of_generated(rule: Rule, ruleset: RuleSet) -> list[str]:
    parts = rule.id.split(".")
    named = [p for p in parts if p in ruleset.drugs]
    if named:
        return named
    then = rule.spec.then
    out = list(then.exclude or [])
    if then.recommend and then.recommend.drug:
        out.append(then.recommend.drug)
    return list(dict.fromkeys(out))


def _mentions(rule: Rule, drug: str) -> bool:
    then = rule.spec.then
    rec = then.recommend
    if drug in (then.exclude or []) or (rec and (rec.drug == drug or
                                                 drug in (rec.among or []))):
        return True
    if any(m.drug == drug for m in then.monitor or []) or (then.dose and then.dose.drug == drug):
        return True
    return any(f == drug or f.startswith(drug + "_") for f in rule.condition.facts())


def _rule_thresholds(rule: Rule, ruleset: RuleSet) -> list[str]:
    names: list[str] = []
    stack: list[Any] = [rule.condition]
    from ..engine import conditions as C
    while stack:
        node = stack.pop()
        if isinstance(node, C.Leaf):
            names += thresholds_in(node, ruleset)
        elif isinstance(node, (C.All, C.Any_)):
            stack.extend(node.items)
        elif isinstance(node, C.Not):
            stack.append(node.item)
    for m in rule.spec.then.monitor or []:
        for key in ("every_days", "until_day", "first_in_days", "shown_from_day",
                    "shown_until_day"):
            value = getattr(m, key)
            if isinstance(value, str):
                names.append(value)
    return list(dict.fromkeys(n for n in names if n in ruleset.thresholds))


def _worked(rule: Rule, runs: list[Run], ruleset: RuleSet) -> dict[str, Any] | None:
    """One scenario, the rule's conditions checked one by one on it."""
    ok = [r for r in runs if r.result is not None]
    if not ok:
        return None
    chosen = [r for r in ok if r.chosen == rule.id]
    fired = [r for r in ok if rule.id in r.fired]
    parts = top_parts(rule.condition)
    if chosen or fired:
        run, kind = (chosen or fired)[0], "why"
    else:
        run = max(ok, key=lambda r: (sum(r.truth(p) is True for p in parts), -r.index))
        kind = "why-not"
    rows = []
    for p in parts:
        value = run.truth(p)
        seen = []
        for fact in dict.fromkeys(p.facts()):
            if fact in ruleset.derived:
                seen.append(f"{fact}: {'derived' if fact in run.derived else 'not derived'}")
            else:
                seen.append(f"{fact} = {run.facts.get(fact, 'unknown')}")
        rows.append({"words": condition_words(p, ruleset),
                     "met": {True: "met", False: "not met", None: "unknown"}[value],
                     "seen": "; ".join(seen)})
    rec = run.result["recommendation"] if run.result else {}
    outcome = f"{rec.get('action')} {rec.get('drug') or ''}".strip()
    note = ""
    if kind == "why" and run.chosen != rule.id and rule.spec.then.recommend:
        other = ruleset.by_id.get(run.chosen or "")
        note = (f"The rule fired, but the step came from {run.chosen}"
                + (f" (priority {other.spec.priority} against {rule.spec.priority})"
                   if other else "") + ".")
    return {"kind": kind, "run": run, "rows": rows, "outcome": outcome,
            "summary": rec.get("summary", ""), "note": note}


def _ranking(rule: Rule, runs: list[Run], ruleset: RuleSet) -> dict[str, list[dict]]:
    outranks: dict[str, int] = {}
    outranked: dict[str, int] = {}
    if rule.spec.then.recommend:
        for r in runs:
            if r.result is None or rule.id not in r.fired:
                continue
            others = [x for x in r.fired if x != rule.id and x in ruleset.by_id
                      and ruleset.by_id[x].spec.then.recommend]
            if r.chosen == rule.id:
                for x in others:
                    outranks[x] = outranks.get(x, 0) + 1
            elif r.chosen in ruleset.by_id:
                outranked[r.chosen] = outranked.get(r.chosen, 0) + 1  # type: ignore[index]
    def rows(found: dict[str, int]) -> list[dict]:
        return [{"id": k, "priority": ruleset.by_id[k].spec.priority, "times": n,
                 "title": ruleset.by_id[k].spec.title}
                for k, n in sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))]
    same = []
    rec = rule.spec.then.recommend
    if rec and rec.drug:
        same = [{"id": o.id, "priority": o.spec.priority, "title": o.spec.title}
                for o in ruleset.recommenders.get(rec.drug, ()) if o.id != rule.id]
    blocked = []
    for drug in rule.spec.then.exclude or []:
        blocked += [{"id": o.id, "priority": o.spec.priority, "title": o.spec.title,
                     "drug": drug} for o in ruleset.recommenders.get(drug, ())]
    return {"outranks": rows(outranks), "outranked": rows(outranked), "same_drug": same,
            "blocks": blocked}


class Site:
    """Writes the pages; one Jinja2 environment, pages named by what they show."""

    def __init__(self, out: Path, ruleset: RuleSet, folder: Path) -> None:
        import jinja2
        self.out = out
        self.ruleset = ruleset
        self.folder = folder
        self.pages = 0
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(files("cledecide.rulebook") / "templates")),
            autoescape=True, trim_blocks=True, lstrip_blocks=True,
            undefined=jinja2.StrictUndefined)
        self.env.filters["links"] = citation_links
        self.env.filters["label"] = lambda s: str(s).replace("_", " ")
        self.env.filters["words"] = lambda s: " ".join(str(s).split())
        self.env.filters["rel"] = lambda s: Path(str(s)).name  # no machine paths on pages
        prov = ruleset.provenance
        self.common = {"prov": prov, "sha": ruleset.sha256,
                       "status_text": status_label(prov.status),
                       "approved": is_approved(prov.status), "evidence": ruleset.evidence,
                       "built": dt.date.today().isoformat(), "STATES": STATES}

    def write(self, page: str, template: str, /, **values: Any) -> None:
        depth = page.count("/")
        html = self.env.get_template(template).render(
            root="../" * depth, **self.common, **values)
        path = self.out / page
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
        self.pages += 1


def build(out: Path | str, folder: Path | str | None = None, since: str | None = None,
          patients: list[str] | None = None, scenarios: Path | str | None = None) -> SiteReport:
    """Write the rulebook of a rules folder into `out`."""
    from ..reviewer.review import default_scenarios_dir
    folder = Path(folder) if folder else default_rules_dir()
    out = Path(out)
    ruleset = load_ruleset(folder)
    where = Path(scenarios) if scenarios else default_scenarios_dir(folder)
    runs = run_all(where, ruleset) if where.is_dir() else []
    unit_map = folder_units(folder, ruleset)
    if out.exists() and not out.is_dir():
        raise RuleError("the output must be a folder", str(out))
    out.mkdir(parents=True, exist_ok=True)
    assets = out / "assets"
    assets.mkdir(exist_ok=True)
    for name in ("rulebook.css", "search.js"):
        shutil.copyfile(str(files("cledecide.rulebook") / "assets" / name), assets / name)

    site = Site(out, ruleset, folder)
    derivers = _derivers(ruleset)
    inactive = {s.id: s for s in ruleset.inactive}
    by_rule: dict[str, list[Run]] = {}
    for run in runs:
        named = set(run.fired)
        if isinstance(run.expect.get("rule"), str):
            named.add(run.expect["rule"])
        for rid in named | set(run.expect.get("rules_fired") or []):
            by_rule.setdefault(rid, []).append(run)
    generated_by_drug: dict[str, list[str]] = {}
    for rule in ruleset.rules:
        if rule.id.startswith("catalogue."):
            for d in _drug_of_generated(rule, ruleset):
                generated_by_drug.setdefault(d, []).append(rule.id)
    threshold_readers: dict[str, list[str]] = {}
    rule_rows = []
    for rule in ruleset.rules:
        names = _rule_thresholds(rule, ruleset)
        for n in names:
            threshold_readers.setdefault(n, []).append(rule.id)
        unit = unit_map.get(("rule", rule.id))
        mine = by_rule.get(rule.id, [])
        generated = rule.id.startswith("catalogue.")
        site.write(f"rules/{rule.id}.html", "rule.html", rule=rule, spec=rule.spec,
                   unit=unit, generated=generated,
                   from_drugs=_drug_of_generated(rule, ruleset) if generated else [],
                   tree=condition_tree(rule.condition, ruleset, derivers),
                   thresholds=names, ranking=_ranking(rule, mine, ruleset),
                   runs=mine[:MAX_SCENARIOS_PER_RULE], runs_total=len(mine),
                   runs_failed=sum(not r.passed for r in mine),
                   worked=_worked(rule, mine or runs, ruleset),
                   derivers=derivers, ruleset=ruleset, active=True)
        rule_rows.append({"id": rule.id, "title": rule.spec.title, "stage": rule.stage,
                          "kind": rule.kind, "priority": rule.spec.priority,
                          "state": unit.state if unit else "generated",
                          "scenarios": len(mine), "failed": sum(not r.passed for r in mine),
                          "inactive": ""})
    for spec in ruleset.inactive:
        unit = unit_map.get(("rule", spec.id))
        site.write(f"rules/{spec.id}.html", "inactive.html", spec=spec, unit=unit)
        rule_rows.append({"id": spec.id, "title": spec.title, "stage": spec.stage or "inactive",
                          "kind": spec.then.kind, "priority": spec.priority,
                          "state": unit.state if unit else "unreviewed", "scenarios": 0,
                          "failed": 0, "inactive": spec.status})
    stages = [s for s in V.STAGES if any(r["stage"] == s for r in rule_rows)]
    stages += sorted({r["stage"] for r in rule_rows} - set(stages))
    site.write("rules/index.html", "rules.html", stages=stages,
               rows=sorted(rule_rows, key=lambda r: (-r["priority"], r["id"])))
    for name, entry in sorted(ruleset.drugs.items()):
        users = [r for r in ruleset.rules if not r.id.startswith("catalogue.")
                 and _mentions(r, name)]
        site.write(f"drugs/{name}.html", "drug.html", name=name, drug=entry,
                   unit=unit_map.get(("drug", name)), users=users,
                   generated=sorted(generated_by_drug.get(name, [])), ruleset=ruleset)
    site.write("drugs/index.html", "drugs.html", drugs=sorted(ruleset.drugs.items()),
               units=unit_map)
    duration_users: dict[str, list[str]] = {}
    from ..engine.ruleset import _durations
    for name, entry in ruleset.drugs.items():
        for path, value in _durations(entry):
            duration_users.setdefault(value, []).append(f"{name} ({'.'.join(path)})")
    for name, t in sorted(ruleset.provenance.thresholds.items()):
        site.write(f"thresholds/{name}.html", "threshold.html", name=name, t=t,
                   unit=unit_map.get(("threshold", name)),
                   readers=sorted(threshold_readers.get(name, [])),
                   drug_users=duration_users.get(name, []), ruleset=ruleset)
    site.write("thresholds/index.html", "thresholds.html",
               thresholds=sorted(ruleset.provenance.thresholds.items()), units=unit_map,
               readers=threshold_readers)
    cited: dict[str, list[str]] = {}
    for rule in ruleset.rules:
        for k in rule.spec.evidence:
            cited.setdefault(k, []).append(rule.id)
    site.write("evidence.html", "evidence.html", cited=cited)
    change = changes(folder, since, patients, where)
    site.write("changes.html", "changes.html", change=change)
    table = counts(unit_map.values())
    total_runs, failed_runs = len(runs), sum(not r.passed for r in runs)
    site.write("index.html", "home.html", counts=table, KINDS=KINDS,
               ladder=ladder_svg(ruleset, ""), n_rules=len(ruleset.rules),
               n_generated=sum(r.id.startswith("catalogue.") for r in ruleset.rules),
               n_inactive=len(inactive), scenarios=total_runs, failed=failed_runs,
               units_total=sum(sum(v.values()) for v in table.values()))
    index = _search_index(ruleset, unit_map)
    (assets / "search-index.js").write_text(
        "window.RULEBOOK_INDEX = " + json.dumps(index, ensure_ascii=False,
                                                separators=(",", ":")) + ";\n",
        encoding="utf-8")
    return SiteReport(out, site.pages, table, ruleset.provenance.status, total_runs,
                      failed_runs, "none" if change.get("none") else str(change.get("since")),
                      len(ruleset.rules), len(ruleset.drugs),
                      len(ruleset.provenance.thresholds))


def _search_index(ruleset: RuleSet, unit_map: dict[tuple[str, str], Unit]) -> list[dict]:
    """What the search box finds: ids, titles, drugs and citations."""
    out = []
    for rule in ruleset.rules:
        then = rule.spec.then
        drugs = list(then.exclude or [])
        if then.recommend and then.recommend.drug:
            drugs.append(then.recommend.drug)
        drugs += [m.drug for m in then.monitor or [] if m.drug]
        drugs += [d for d in ruleset.drugs if any(f.startswith(d + "_")
                                                   for f in rule.condition.facts())]
        labels = [ruleset.drugs[d].label for d in dict.fromkeys(drugs) if d in ruleset.drugs]
        cites = [" ".join(ruleset.evidence[k].citation.split()) for k in rule.spec.evidence
                 if k in ruleset.evidence]
        out.append({"k": "rule", "id": rule.id, "t": rule.spec.title,
                    "u": f"rules/{rule.id}.html",
                    "x": " ".join(list(dict.fromkeys(drugs)) + labels + rule.spec.evidence
                                  + cites)})
    for spec in ruleset.inactive:
        out.append({"k": f"rule ({spec.status})", "id": spec.id, "t": spec.title,
                    "u": f"rules/{spec.id}.html", "x": " ".join(spec.evidence)})
    for name, d in sorted(ruleset.drugs.items()):
        out.append({"k": "drug", "id": name, "t": d.label, "u": f"drugs/{name}.html",
                    "x": f"{d.drug_class} {d.stage} " + " ".join(d.evidence)})
    for name, t in sorted(ruleset.provenance.thresholds.items()):
        out.append({"k": "threshold", "id": name, "t": f"{t.value:g} {t.unit}",
                    "u": f"thresholds/{name}.html", "x": " ".join(t.evidence) + " " + t.note})
    for key, e in sorted(ruleset.evidence.items()):
        out.append({"k": "evidence", "id": key, "t": " ".join(e.citation.split()),
                    "u": f"evidence.html#ev-{key}", "x": e.note})
    return out
