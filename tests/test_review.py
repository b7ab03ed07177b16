"""Reviewer workflow: check, test, diff, graph, list, show, on the shipped rules and on
deliberately broken copies."""
from __future__ import annotations


import pytest


from conftest import EXAMPLES, ROOT, RULES, cli, edit

SCENARIOS = ROOT / "scenarios"


def test_shipped_rules_have_no_errors() -> None:
    r = cli("rules", "check", RULES, "--today", "2026-11-25")
    assert r.exit_code == 0, r.output
    last = r.output.splitlines()[-1]
    assert " 0 errors" in last or last.startswith("0 errors")


BROKEN = [
    ("yaml", "topical.yaml", "  - id: topical.insufficient", "  - id: [topical.insufficient",
     "YAML syntax"),
    ("unknown key", "topical.yaml", "    priority: 20\n", "    priority: 20\n    colour: red\n",
     "unknown field"),
    ("wrong type", "topical.yaml", "    priority: 20\n", "    priority: high\n",
     "must be a number"),
    ("bad action", "topical.yaml", "{action: start, drug: topical_corticosteroid}",
     "{action: prescribe, drug: topical_corticosteroid}", "must be one of"),
    ("bad stage", "topical.yaml", "stage: topical", "stage: cream", "must be one of"),
    ("unknown drug", "topical.yaml", "drug: topical_corticosteroid}", "drug: aspirin}",
     "must be one of"),
    ("unknown fact", "topical.yaml", "extent == localized", "extnt == localized", "unknown fact"),
    ("unknown word", "topical.yaml", "extent == localized", "extent == everywhere",
     "not a value"),
    ("unknown evidence", "topical.yaml", "evidence: [kuhn-2017, worm-2021]",
     "evidence: [kuhn-2017, smith-1999]", "unknown evidence key"),
    ("dangling derived", "antimalarial.yaml", "when: topicals_insufficient",
     "when: topicals_failed", "unknown fact 'topicals_failed'"),
    ("operator syntax", "topical.yaml", "extent == localized", "$gte extent 1", "cannot read"),
    ("negated derived", "antimalarial.yaml", "when: topicals_insufficient",
     "when: {not: topicals_insufficient}", "cannot be negated"),
    # The rule templates (rules/reproductive-templates.yaml): a mistake names its line
    # whether or not a drug meets the template today.
    ("template format", "reproductive-templates.yaml", "    priority: 81",
     "    priority: high", "must be a number"),
    ("template placeholder", "reproductive-templates.yaml",
     "title: Pregnancy tests on {{label}}", "title: Pregnancy tests on {{lable}}",
     "{{lable}}: unknown here"),
    ("template test", "reproductive-templates.yaml", "where: after_last_dose.weeks >= 52",
     "where: after_last_dose.wekes >= 52", "'.wekes'"),
    ("template field", "reproductive-templates.yaml", "for: each value of contraception",
     "for: each value of contraceptoin", "'contraceptoin' is not a field"),
    ("template makes a bad rule", "reproductive-templates.yaml",
     "severity: critical\n        message: >-\n          Pregnant within",
     "severity: urgent\n        message: >-\n          Pregnant within",
     "then.warn.severity: generated rule catalogue.washout.methotrexate: must be one of"),
    ("template condition", "reproductive-templates.yaml",
     "when: {all: [sex == male, planning_to_father,",
     "when: {all: [sex == male, planning_to_fathre,", "unknown fact 'planning_to_fathre'"),
]


@pytest.mark.parametrize("name, file, old, new, words", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_rules_are_errors_with_file_and_line(rules, name, file, old, new, words) -> None:
    edit(rules / file, old, new)
    r = cli("rules", "check", rules, "--samples", "0")
    assert r.exit_code == 2, r.output
    assert words in r.output
    assert f"{file}:" in r.output
    ev = cli("evaluate", EXAMPLES / "hcq-inadequate.yaml", "--rules", rules)
    assert ev.exit_code == 2 and words in ev.output and "NEXT STEP" not in ev.output


def test_duplicate_ids_across_files(rules) -> None:
    edit(rules / "bridge.yaml", "id: bridge.corticosteroid.taper", "id: topical.insufficient")
    r = cli("rules", "check", rules, "--samples", "0")
    assert r.exit_code == 2 and "duplicate rule id 'topical.insufficient'" in r.output
    assert "bridge.yaml:" in r.output and "first at" in r.output


def test_circular_derivation(rules) -> None:
    edit(rules / "topical.yaml", "        - topical_corticosteroid_status in [current, stopped]",
         "        - systemic_therapy_indicated")
    r = cli("rules", "check", rules, "--samples", "0")
    assert r.exit_code == 2 and "circular derivation" in r.output


def test_contradictory_rule_never_fires(rules) -> None:
    edit(rules / "topical.yaml",
         "        - extent == localized\n        - topical_corticosteroid_status == never",
         "        - extent == localized\n        - extent == widespread")
    r = cli("rules", "check", rules, "--samples", "0")
    assert r.exit_code == 2 and "never-fires" in r.output
    assert "topical.corticosteroid.localized" in r.output


def test_conflict_and_strict(rules) -> None:
    edit(rules / "topical.yaml", "priority: 18", "priority: 20")
    r = cli("rules", "check", rules, "--samples", "100", "--hypothesis", "0",
            "--today", "2026-11-25")
    assert r.exit_code == 0
    assert "conflict" in r.output and "example patient:" in r.output
    r = cli("rules", "check", rules, "--samples", "100", "--hypothesis", "0", "--strict",
            "--today", "2026-11-25")
    assert r.exit_code == 1


@pytest.mark.deep
def test_hypothesis_search_reaches_rules_random_sampling_missed() -> None:
    def unreached(hypothesis: str) -> set[str]:
        r = cli("rules", "check", RULES, "--deep", "--samples", "30", "--hypothesis",
                hypothesis, "--today", "2026-11-25")
        return {line.split("'")[1] for line in r.output.splitlines() if "unreached:" in line}
    without = unreached("0")
    with_search = unreached("8")
    assert without and with_search < without


def test_the_quick_check_leaves_claims_about_every_patient_to_the_deep_search() -> None:
    quick = cli("rules", "check", RULES, "--samples", "30", "--today", "2026-11-25")
    assert quick.exit_code == 0 and "quick search: 30 patients" in quick.output
    assert "unreached:" not in quick.output and "--deep" in quick.output
    deep = cli("rules", "check", RULES, "--deep", "--samples", "30", "--hypothesis", "0",
               "--today", "2026-11-25")
    assert "unreached:" in deep.output and "deep search: 30 patients" in deep.output


@pytest.mark.deep
def test_masked_rule_is_reported(rules) -> None:
    edit(rules / "topical.yaml", "priority: 18", "priority: 10")
    edit(rules / "topical.yaml", "        - topical_calcineurin_inhibitor_status == never",
         "        - topical_calcineurin_inhibitor_status == never\n"
         "        - topical_corticosteroid_status == never")
    r = cli("rules", "check", rules, "--deep", "--samples", "600", "--today", "2026-11-25")
    assert "masked: " in r.output and "topical.calcineurin-inhibitor.localized" in r.output


@pytest.mark.deep
def test_redundant_rule_is_reported(rules) -> None:
    text = (rules / "topical.yaml").read_text()
    extra = text[text.index("  - id: topical.corticosteroid.localized"):
                 text.index("  - id: topical.calcineurin-inhibitor.localized")]
    extra = extra.replace("id: topical.corticosteroid.localized", "id: topical.copy") \
        .replace("        - topical_corticosteroid_status == never",
                 "        - topical_corticosteroid_status == never\n        - subtype == DLE")
    (rules / "topical.yaml").write_text(text + "\n" + extra)
    r = cli("rules", "check", rules, "--deep", "--samples", "600", "--today", "2026-11-25")
    assert "redundant: " in r.output and "'topical.copy' does what" in r.output


def test_gap_is_reported(rules) -> None:
    edit(rules / "general.yaml",
         "when: active_disease\n    then:\n      recommend:\n        action: refer",
         "when: {all: [active_disease, pregnant]}\n    then:\n      recommend:\n"
         "        action: refer")
    edit(rules / "ruleset.yaml", "gap_fallbacks: [general.active-unresolved, general.continue]",
         "gap_fallbacks: [general.continue]")
    # and no first antimalarial for a new patient unless pregnant: a sure gap
    edit(rules / "antimalarial.yaml", "        - systemic_therapy_indicated\n"
         "        - hydroxychloroquine_status == never\n",
         "        - systemic_therapy_indicated\n        - pregnant\n"
         "        - hydroxychloroquine_status == never\n", 1)
    r = cli("rules", "check", rules, "--samples", "200", "--today", "2026-11-25")
    assert "gap: " in r.output and "example patient:" in r.output


def test_missing_evidence_uncited_and_review_due(rules) -> None:
    edit(rules / "topical.yaml", "    evidence: [kuhn-2017, worm-2021]\n", "", 1)
    edit(rules / "evidence.yaml", "evidence:\n",
         "evidence:\n  unused-2020:\n    citation: Nobody cites this.\n")
    r = cli("rules", "check", rules, "--samples", "0", "--today", "2028-01-01")
    assert r.exit_code == 0
    assert "no-evidence" in r.output and "uncited-evidence" in r.output
    assert "review-due" in r.output


def test_scenarios_all_pass_and_cover_every_rule() -> None:
    r = cli("rules", "test", RULES, "--scenarios", SCENARIOS)
    assert r.exit_code == 0, r.output
    last = r.output.strip().splitlines()[-1]
    passed = int(last.split()[0])
    assert passed >= 25 and last.endswith("0 failed")
    assert "0 rules fired in no scenario" in r.output


def test_failing_scenario_prints_a_diff(tmp_path) -> None:
    folder = tmp_path / "sc"
    folder.mkdir()
    (folder / "one.yaml").write_text((SCENARIOS / "ladder.yaml").read_text().replace(
        "      action: start\n      drug: topical_corticosteroid",
        "      action: start\n      drug: methotrexate"))
    r = cli("rules", "test", RULES, "--scenarios", folder, "--no-coverage")
    assert r.exit_code == 1
    assert "FAIL mild localized DLE starts a topical corticosteroid" in r.output
    assert "drug: - expected 'methotrexate'  + got 'topical_corticosteroid'" in r.output
    assert r.output.strip().endswith("1 failed")


def test_diff_shows_changed_rules_and_outcomes(rules) -> None:
    edit(rules / "refractory.yaml",
         "    title: Thalidomide for refractory disease\n    priority: 70",
         "    title: Thalidomide for refractory disease\n    priority: 60")
    r = cli("rules", "diff", RULES, rules, "--scenarios", SCENARIOS, "--examples", EXAMPLES)
    assert r.exit_code == 0
    assert "~ changed refractory.thalidomide: priority: 70 -> 60" in r.output
    assert "    step: add thalidomide [refractory.thalidomide] -> add lenalidomide " \
        "[refractory.lenalidomide]" in r.output


def test_diff_added_removed(rules) -> None:
    edit(rules / "bridge.yaml", "id: bridge.corticosteroid.taper", "id: bridge.corticosteroid.long")
    r = cli("rules", "diff", RULES, rules, "--scenarios", SCENARIOS)
    assert "+ added   bridge.corticosteroid.long" in r.output
    assert "- removed bridge.corticosteroid.taper" in r.output


@pytest.mark.parametrize("fmt, head", [("mermaid", "flowchart LR"), ("dot", "digraph ladder")])
def test_graph(fmt, head) -> None:
    r = cli("rules", "graph", RULES, "--format", fmt)
    assert r.exit_code == 0 and r.output.startswith(head)
    for drug in ("hydroxychloroquine", "methotrexate", "lenalidomide", "thalidomide"):
        assert drug in r.output
    assert "excludes" in r.output


def test_docs_embed_the_current_graph() -> None:
    r = cli("rules", "graph", RULES)
    assert r.output in (ROOT / "docs" / "ladder.md").read_text()


def test_a_template_file_is_needed_and_two_templates_cannot_make_one_rule(rules) -> None:
    edit(rules / "reproductive-templates.yaml", "  - id: catalogue.planning.washout.{{drug}}",
         "  - id: catalogue.planning.stop.{{drug}}")
    r = cli("rules", "check", rules, "--samples", "0")
    assert r.exit_code == 2
    assert "reproductive-templates.yaml:" in r.output and "is made twice" in r.output
    (rules / "reproductive-templates.yaml").unlink()
    r = cli("rules", "check", rules, "--samples", "0")
    assert r.exit_code == 2 and "missing reproductive-templates.yaml" in r.output


def test_a_template_edit_changes_the_rules_it_makes(rules) -> None:
    """A reviewer edits a template's words: every rule it makes follows, and the rule
    set's hash changes with it."""
    from cledecide.engine.ruleset import check_folder
    before, _ = check_folder(rules)
    edit(rules / "reproductive-templates.yaml", "refer now for teratology counselling.",
         "refer now for teratology counselling (edited).")
    after, findings = check_folder(rules)
    assert after is not None, findings
    washouts = [r for r in after.rules if r.id.startswith("catalogue.washout.")]
    assert len(washouts) >= 2 and all("(edited)" in r.spec.then.warn.message for r in washouts)
    assert after.sha256 != before.sha256 and after.files_sha256 != before.files_sha256


def test_list_as_json_has_every_rule_in_full() -> None:
    import json
    from cledecide.engine.rulecache import load_ruleset
    r = cli("rules", "list", RULES, "--format", "json")
    assert r.exit_code == 0, r.output
    listed = json.loads(r.output)
    assert sorted(x["id"] for x in listed) == sorted(x.id for x in load_ruleset(RULES).rules)
    washout = next(x for x in listed if x["id"] == "catalogue.washout.acitretin")
    assert washout["file"] == "drugs.yaml" and washout["spec"]["then"]["warn"]["severity"]
    assert cli("rules", "list", RULES, "--format", "json").output == r.output
    assert cli("rules", "list", RULES, "--format", "yaml").exit_code == 2


def test_list_and_show() -> None:
    r = cli("rules", "list", RULES)
    assert r.exit_code == 0 and "refractory.lenalidomide.neuropathy" in r.output
    r = cli("rules", "show", "refractory.lenalidomide.neuropathy", "--rules", RULES)
    assert r.exit_code == 0 and "Cortés-Hernández" in r.output and "when:" in r.output
    r = cli("rules", "show", "no.such.rule", "--rules", RULES)
    assert r.exit_code == 2


def test_durable_match_limit_is_reported_and_fails_cleanly(rules) -> None:
    """durable_rules fails (error 303) when more than 64 rules match one fact at once:
    rules check warns before that, and evaluate stops with a clear error."""
    extra = ["stage: general", "rules:"]
    for i in range(70):
        extra += [f"  - id: general.noise-{i:02d}", f"    title: noise {i}", "    priority: 1",
                  f"    when: clasi_activity >= 0.{i:02d}",
                  "    then: {warn: {severity: info, message: n}}",
                  "    because: test", "    evidence: [kuhn-2017]"]
    (rules / "noise.yaml").write_text("\n".join(extra) + "\n")
    r = cli("rules", "check", rules, "--samples", "50", "--hypothesis", "0",
            "--today", "2026-11-25")
    assert r.exit_code == 2 and "engine-failure" in r.output and "error 303" in r.output
    ev = cli("evaluate", EXAMPLES / "hcq-inadequate.yaml", "--rules", rules)
    assert ev.exit_code == 2 and "more than 64 rules" in ev.output


def test_many_rules_matching_at_once_warn(rules) -> None:
    extra = ["stage: general", "rules:"]
    for i in range(50):
        extra += [f"  - id: general.echo-{i:02d}", f"    title: echo {i}", "    priority: 1",
                  "    when: clasi_activity >= 0", "    then: {warn: {severity: info, message: n}}",
                  "    because: test", "    evidence: [kuhn-2017]"]
    (rules / "echo.yaml").write_text("\n".join(extra) + "\n")
    r = cli("rules", "check", rules, "--samples", "40", "--hypothesis", "0",
            "--today", "2026-11-25")
    assert "match-limit" in r.output and r.exit_code == 0
