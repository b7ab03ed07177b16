"""The reviewer's commands read the way a reviewer works (issue 24, "small ones" and
"priorities"): list with files and retired rules, show a retired rule and what a rule
outranks, one way to name the folder, the version-bump warning, graph filters."""
from __future__ import annotations

import re
from pathlib import Path



from conftest import ROOT, RULES, cli, edit

def retire(rules: Path, rule_id: str) -> None:
    edit(rules / "antimalarial.yaml", f"  - id: {rule_id}\n",
         f"  - id: {rule_id}\n    status: retired\n")


# ------------------------------------------------------------------ list, show

def test_list_has_a_file_column_that_points_at_the_rule() -> None:
    r = cli("rules", "list", RULES)
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0].split()[:6] == ["ID", "STAGE", "PRI", "KIND", "FILE",
                                                   "TITLE"]
    row = next(x for x in r.output.splitlines() if x.startswith("antimalarial.quinacrine.add "))
    where = re.search(r"(\S+\.yaml):(\d+)", row)
    assert where and where.group(1) == "antimalarial.yaml"
    line = (RULES / "antimalarial.yaml").read_text().splitlines()[int(where.group(2)) - 1]
    assert line.strip() == "- id: antimalarial.quinacrine.add"
    # generated rules name the catalogue
    assert re.search(r"^catalogue\.washout\.acitretin .*drugs\.yaml", r.output, re.M)


def test_retired_rules_are_listed_with_all_and_shown_marked_retired(rules) -> None:
    retire(rules, "antimalarial.quinacrine.add")
    plain = cli("rules", "list", rules)
    assert plain.exit_code == 0 and "antimalarial.quinacrine.add " not in plain.output
    every = cli("rules", "list", "--rules", rules, "--all")
    assert every.exit_code == 0, every.output
    assert "STATUS" in every.output.splitlines()[0]
    row = next(x for x in every.output.splitlines()
               if x.startswith("antimalarial.quinacrine.add "))
    assert " retired " in row and "antimalarial.yaml:" in row
    assert len(every.output.splitlines()) == len(plain.output.splitlines()) + 1
    shown = cli("rules", "show", "antimalarial.quinacrine.add", rules)
    assert shown.exit_code == 0, shown.output
    assert "RETIRED" in shown.output.splitlines()[0]
    assert "antimalarial.yaml:" in shown.output.splitlines()[0]
    assert "recommend:" in shown.output and "evidence:" in shown.output
    assert cli("rules", "show", "no.such.rule", rules).exit_code == 2


def test_list_and_show_take_the_folder_as_the_other_commands_do(rules) -> None:
    edit(rules / "antimalarial.yaml", "title: Add quinacrine when hydroxychloroquine",
         "title: EDITED Add quinacrine when hydroxychloroquine")
    for args in (("list", rules), ("list", "--rules", rules),
                 ("show", "antimalarial.quinacrine.add", rules),
                 ("show", "antimalarial.quinacrine.add", "--rules", rules)):
        r = cli("rules", *args)
        assert r.exit_code == 0, r.output
        assert "EDITED" in r.output, args
    for args in (("check", "--rules", rules, "--samples", "0"),
                 ("graph", "--rules", rules)):
        assert cli("rules", *args).exit_code == 0
    r = cli("rules", "list", rules, "--rules", RULES)
    assert r.exit_code == 2 and "two rules folders" in r.output


# --------------------------------------------------------------- priorities

def test_show_lists_what_a_rule_outranks_and_what_outranks_it() -> None:
    r = cli("rules", "show", "antimalarial.quinacrine.add", RULES)
    assert r.exit_code == 0, r.output
    text = r.output
    above, below = text.index("outranked by:"), text.index("outranks:")
    # a higher-priority step of the same stage is above, a lower one below
    assert 0 < text.index("antimalarial.hydroxychloroquine.increase", above) < below
    assert text.index("antimalarial.quinacrine.after-hydroxychloroquine") > below
    assert "monitoring." not in text[above:]  # another stage's steps are not rivals
    # an exclusion is ranked against the exclusions of the same drug only
    r = cli("rules", "show", "safety.pregnancy.unknown", RULES)
    rivals = r.output[r.output.index("priority "):]
    assert "drug quinacrine" in rivals and "step of stage" not in rivals


# ----------------------------------------------------------- the version bump

def test_a_change_without_a_version_bump_is_a_warning(rules) -> None:
    check = ("rules", "check", rules, "--samples", "0")
    assert "version-not-bumped" not in cli(*check).output  # nothing recorded: open
    r = cli("rules", "lock", rules)
    assert r.exit_code == 0 and "0.1.0" in r.output, r.output
    assert re.search(r"^0\.1\.0 [0-9a-f]{64}$", (rules / "versions.lock").read_text(), re.M)
    assert "already recorded" in cli("rules", "lock", rules).output
    assert "version-not-bumped" not in cli(*check).output
    # a signed record or a corrected citation is not a change of content
    edit(rules / "evidence.yaml", "S2k guideline", "S2k Guideline")
    assert "version-not-bumped" not in cli(*check).output
    edit(rules / "ruleset.yaml", "  antimalarial_trial_months:\n    value: 3",
         "  antimalarial_trial_months:\n    value: 4")
    r = cli(*check)
    assert r.exit_code == 0
    found = [x for x in r.output.splitlines() if "version-not-bumped" in x]
    assert len(found) == 1 and "ruleset.yaml:" in found[0] and "version" in found[0]
    assert cli("rules", "lock", rules).exit_code == 2  # never overwrites a version
    edit(rules / "ruleset.yaml", "version: 0.1.0", "version: 0.1.1")
    assert "version-not-bumped" not in cli(*check).output
    r = cli("rules", "lock", rules)
    assert r.exit_code == 0 and "0.1.1" in r.output
    assert "0.1.1 " in (rules / "versions.lock").read_text()
    edit(rules / "antimalarial.yaml", "title: Add quinacrine when hydroxychloroquine",
         "title: Quinacrine when hydroxychloroquine")
    assert "version-not-bumped" in cli(*check).output


# -------------------------------------------------------------------- graph

def test_graph_filters_by_drug_and_stage_and_edges_carry_their_condition() -> None:
    whole = cli("rules", "graph", RULES).output
    r = cli("rules", "graph", RULES, "--drug", "quinacrine")
    assert r.exit_code == 0, r.output
    edges = [x for x in r.output.splitlines() if "--" in x]
    assert edges and len(r.output) < len(whole)
    into = [e for e in edges if e.rstrip().endswith("| quinacrine")]
    assert into and all("methotrexate" not in e.split("|")[-1] for e in edges)
    add = next(e for e in into if "antimalarial.quinacrine.add:" in e)
    # the whole condition, not just its first fact
    for part in ("hydroxychloroquine_failed", "active_disease",
                 "hydroxychloroquine_status == current", "quinacrine_status == never"):
        assert part in add
    # and what it rests on: the derivation of hydroxychloroquine_failed
    assert any(e.rstrip().endswith("| hydroxychloroquine_failed") for e in edges)
    r = cli("rules", "graph", RULES, "--stage", "refractory", "--format", "dot")
    assert r.exit_code == 0 and "thalidomide" in r.output and "hydroxychloroquine ->" \
        not in r.output
    assert "quinacrine [" not in r.output
    assert cli("rules", "graph", RULES, "--drug", "aspirin").exit_code == 2
    assert cli("rules", "graph", RULES, "--stage", "nowhere").exit_code == 2


# ------------------------------------------------ scenarios in `rules check`

SMOKERS = '''rules:
  - id: topical.calcineurin-inhibitor.smokers
    title: Calcineurin inhibitor for smokers
    priority: 99
    when:
      all:
        - extent == localized
        - smoker
        - topical_calcineurin_inhibitor_status == never
    then:
      recommend: {action: start, drug: topical_calcineurin_inhibitor}
    because: A rule written for smokers only.
    evidence: [kuhn-2017]

'''


def scenario_lines(output: str) -> list[str]:
    return sorted(x for x in output.splitlines() if "scenario-outcome" in x)


def test_check_reports_a_rule_that_takes_over_a_scenario_it_was_not_written_for(
        rules, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    check = ("rules", "check", rules, "--samples", "0", "--scenarios", ROOT / "scenarios")
    r = cli(*check)
    assert r.exit_code == 0 and not scenario_lines(r.output), r.output
    assert re.search(r"scenarios: \d+ in .*, 0 failing", r.output)
    edit(rules / "topical.yaml", "rules:\n", SMOKERS)
    r = cli(*check)
    found = scenario_lines(r.output)
    assert found, r.output
    # at the new rule's FILE:LINE, naming the scenario at its FILE:LINE
    assert all("topical.yaml:5: rule 'topical.calcineurin-inhibitor.smokers'" in f
               and "which does not name it" in f for f in found)
    assert any(re.search(r"\(ladder\.yaml:\d+\)", f) for f in found)
    assert "expected 'topical_corticosteroid'" in found[0]
    assert cli(*check, "--strict").exit_code == 1
    assert not scenario_lines(cli(*check, "--no-scenarios").output)


def test_the_scenario_cache_reruns_what_an_edit_can_change(rules, tmp_path,
                                                          monkeypatch) -> None:
    """After an edit only the scenarios it can change run again, and the findings are
    those of a full run."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    check = ("rules", "check", rules, "--samples", "0", "--scenarios", ROOT / "scenarios")
    edit(rules / "topical.yaml", "rules:\n", SMOKERS)
    first = cli(*check).output
    total = int(re.search(r"scenarios: (\d+) in", first).group(1))
    for old, new in (("priority: 99", "priority: 10"),          # the new rule steps back
                     ("priority: 20", "priority: 17")):         # a rule that fired changes
        edit(rules / "topical.yaml", old, new)
        cached = cli(*check).output
        ran = int(re.search(r"\((\d+) run, ", cached).group(1))
        assert 0 < ran < total, cached
        monkeypatch.setenv("CLEDECIDE_NO_CACHE", "1")
        full = cli(*check).output
        monkeypatch.delenv("CLEDECIDE_NO_CACHE")
        assert f"({total} run, 0 unchanged" in full
        assert scenario_lines(cached) == scenario_lines(full)
    # the second edit puts the calcineurin inhibitor above the corticosteroid
    assert any("topical.calcineurin-inhibitor.localized" in x or "fails" in x
               for x in scenario_lines(full)), full
