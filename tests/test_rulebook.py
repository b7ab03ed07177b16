"""The rulebook site and the PlanDefinition export (issue 21), without a browser: the
site builds from the shipped rules, every internal link resolves, and a review record on
one rule (on a copy of the rules) shows on the site, in `rules check` and in the export."""
from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from cledecide.engine.rulecache import load_ruleset
from cledecide.rulebook.plandefinition import export_text, plandefinition, validate
from cledecide.rulebook.records import write_review
from cledecide.rulebook.site import build

from conftest import RULES, ROOT
from test_signoff import DAY, edit, approve_everything, cli, set_status

RULE = "antimalarial.quinacrine.add"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append(value)
            if name == "id" and value:
                self.ids.add(value)


def broken_links(site: Path) -> tuple[int, list[str]]:
    """(internal links checked, those whose file or #fragment is missing)."""
    pages: dict[Path, _Links] = {}
    for path in site.rglob("*.html"):
        parser = _Links()
        parser.feed(path.read_text())
        pages[path.resolve()] = parser
    checked, bad = 0, []
    for path, parser in pages.items():
        for link in parser.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//"):
                continue  # a citation's DOI or PubMed link: outside the site
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            checked += 1
            if not target.exists():
                bad.append(f"{path.name}: {link}")
            elif parts.fragment and target.suffix == ".html" and \
                    parts.fragment not in pages[target].ids:
                bad.append(f"{path.name}: {link} (no #{parts.fragment})")
    return checked, bad


@pytest.fixture(scope="module")
def shipped_site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    report = build(out)
    assert report.status == "draft"
    return out


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    dest = tmp_path / "rules"
    shutil.copytree(RULES, dest)
    return dest


def test_site_builds_from_the_shipped_rules_with_a_page_per_unit(shipped_site: Path) -> None:
    rs = load_ruleset(RULES)
    for rule in rs.rules:
        assert (shipped_site / "rules" / f"{rule.id}.html").is_file(), rule.id
    for name in rs.drugs:
        assert (shipped_site / "drugs" / f"{name}.html").is_file(), name
    for name in rs.provenance.thresholds:
        assert (shipped_site / "thresholds" / f"{name}.html").is_file(), name
    home = (shipped_site / "index.html").read_text()
    assert "draft: not clinically approved" in home and rs.sha256 in home
    assert '<svg' in home and 'href="drugs/hydroxychloroquine.html"' in home
    # the sign-off table: every written rule, drug entry and threshold unreviewed
    units = len([r for r in rs.rules if not r.id.startswith("catalogue.")])
    assert f'data-kind="rule" data-state="unreviewed">{units}<' in home
    assert f'data-kind="drug" data-state="unreviewed">{len(rs.drugs)}<' in home
    # offline: no page or asset names another host except citation links
    for path in shipped_site.rglob("*"):
        if path.suffix in (".html", ".css", ".js"):
            text = path.read_text()
            for url in re.findall(r'(?:src|href)="(https?:[^"]+)"', text):
                assert "doi.org" in url or "pubmed" in url or path.suffix == ".html", url
            assert "<script src=\"http" not in text and "@import" not in text


def test_every_internal_link_resolves(shipped_site: Path) -> None:
    checked, bad = broken_links(shipped_site)
    assert checked > 3000 and bad == [], bad[:10]


def test_the_link_check_finds_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "a.html").write_text('<a href="b.html">b</a><a href="a.html#nope">x</a>')
    assert broken_links(tmp_path)[1] == ["a.html: b.html", "a.html: a.html#nope (no #nope)"]


def test_rule_page_shows_conditions_thresholds_evidence_scenarios_and_review(
        shipped_site: Path) -> None:
    page = (shipped_site / "rules" / "general.active-disease.html").read_text()
    assert "CLASI" in page and "threshold moderate_clasi_activity" in page
    assert "10 CLASI-A points" in page  # the threshold's value and unit
    page = (shipped_site / "rules" / f"{RULE}.html").read_text()
    assert "Kuhn A et al. S2k guideline" in page  # full citation
    assert 'data-result="pass"' in page and 'data-result="fail"' not in page
    assert "Worked example: why it fires" in page
    assert "antimalarial.chloroquine.switch" in page  # what it outranks
    assert "No clinician has reviewed this rule" in page
    assert f"cledecide rules review {RULE} --verdict approved" in page
    assert "/work/" not in page and str(ROOT) not in page  # no machine paths


def test_drug_and_threshold_pages(shipped_site: Path) -> None:
    page = (shipped_site / "drugs" / "thalidomide.html").read_text()
    assert "Reproductive profile" in page and "imid_contraception_before_weeks" in page
    assert "catalogue.contraception" in page  # the rules generated from the entry
    page = (shipped_site / "thresholds" / "lab_max_age_days.html").read_text()
    assert "30 days" in page and "a conservative choice" in page
    assert "Rules that read it" in page and "rules/" in page


def test_a_review_record_shows_on_the_site_in_check_and_in_the_export(
        rules: Path, tmp_path: Path) -> None:
    write_review(RULE, "approved", "Dr Jane Roe", "consultant dermatologist",
                 "Checked against kuhn-2017", rules, DAY)
    # the site
    build(tmp_path / "site", rules)
    page = (tmp_path / "site" / "rules" / f"{RULE}.html").read_text()
    assert 'data-state="approved"' in page and "Dr Jane Roe" in page
    assert "Checked against kuhn-2017" in page and "(current)" in page
    home = (tmp_path / "site" / "index.html").read_text()
    assert 'data-kind="rule" data-state="approved">1<' in home
    # rules check
    proc = cli("rules", "check", str(rules), "--samples", "0", "--hypothesis", "0")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("sign-off:"))
    assert "1 approved" in line
    # the PlanDefinition
    plan = json.loads(export_text(rules))
    assert plan["reviewer"] == [{"name": "Dr Jane Roe (consultant dermatologist)"}]
    assert plan["endorser"] == plan["reviewer"] and plan["lastReviewDate"] == DAY.isoformat()
    assert plan["status"] == "draft" and "approvalDate" not in plan  # one rule is not all
    (action,) = [a for a in plan["action"] if a["id"] == RULE]
    assert action["extension"][0]["valueString"] == "approved"


def test_an_edited_rule_is_flagged_stale_on_the_site(rules: Path, tmp_path: Path) -> None:
    write_review(RULE, "approved", "Dr Jane Roe", "dermatologist", "", rules, DAY)
    path = rules / "antimalarial.yaml"
    edit(path, "dose: 100 mg once daily}",
                                             "dose: 200 mg once daily}")
    build(tmp_path / "site", rules)
    page = (tmp_path / "site" / "rules" / f"{RULE}.html").read_text()
    assert "stale-alert" in page and "(earlier version)" in page
    home = (tmp_path / "site" / "index.html").read_text()
    assert 'data-kind="rule" data-state="stale">1<' in home


def test_plandefinition_validates_with_one_action_per_recommend_rule() -> None:
    rs = load_ruleset(RULES)
    plan = plandefinition(rs)
    validate(plan)
    recommend = [r for r in rs.rules if r.spec.then.recommend]
    assert [a["id"] for a in plan["action"]] == \
        [r.id for r in sorted(recommend, key=lambda r: (-r.spec.priority, r.id))]
    assert plan["status"] == "draft" and plan["experimental"] is True
    assert "reviewer" not in plan and "approvalDate" not in plan
    (a,) = [a for a in plan["action"] if a["id"] == RULE]
    assert a["condition"][0]["kind"] == "applicability"
    assert "hydroxychloroquine insufficient" in a["condition"][0]["expression"]["description"]
    assert {d["label"] for d in a["documentation"]} == {"kuhn-2017", "worm-2021"}
    for bad in (dict(plan, status="signed"), dict(plan, approvalDate="29/11/2026"),
                dict(plan, approver="Dr X")):
        with pytest.raises(ValueError):
            validate(bad)


def test_plandefinition_of_a_fully_approved_copy(rules: Path) -> None:
    approve_everything(rules)
    set_status(rules, "approved")
    proc = cli("export", "plandefinition", "--rules", str(rules))
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["status"] == "active" and plan["experimental"] is False
    assert plan["approvalDate"] == DAY.isoformat()
    assert {a["extension"][0]["valueString"] for a in plan["action"]} <= \
        {"approved", "covered by its drug entries"}


def test_changes_page_against_a_folder_with_the_cohort_table(rules: Path,
                                                             tmp_path: Path) -> None:
    path = rules / "ruleset.yaml"
    edit(path, "    value: 21\n", "    value: 15\n")
    cohort = tmp_path / "cohort.jsonl"
    base = json.loads(json.dumps(__import__("conftest").BASE))
    lines = []
    for i, score in enumerate((12, 18, 30)):
        base["id"], base["activity"] = f"p{i}", [{"date": "2026-11-20",
                                                  "clasi_activity": score}]
        lines.append(json.dumps(base))
    cohort.write_text("\n".join(lines) + "\n")
    build(tmp_path / "site", rules, since=str(RULES), patients=[str(cohort)])
    page = (tmp_path / "site" / "changes.html").read_text()
    assert "threshold severe_clasi_activity: 21.0 -&gt; 15.0" in page
    assert "0 of 3 patients get different advice" in page


def test_changes_page_says_when_no_approved_version_exists(shipped_site: Path) -> None:
    page = (shipped_site / "changes.html").read_text()
    assert 'id="no-baseline"' in page and "No approved version" in page


def test_cli_builds_the_site(tmp_path: Path) -> None:
    proc = cli("rules", "site", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "pages" in proc.stdout and "unreviewed" in proc.stdout
    assert (tmp_path / "out" / "assets" / "search.js").is_file()
    proc = cli("rules", "site", str(tmp_path / "x"), "--rules", str(tmp_path / "none"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_review_date_is_today_by_default(rules: Path) -> None:
    _, record = write_review(RULE, "approved", "A", "B", "", rules)
    assert record.date == dt.date.today()
