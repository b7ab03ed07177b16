"""Numbers in prose (issue 24): rule texts name thresholds by placeholder, so a changed
threshold changes every sentence; an unknown placeholder is an error with FILE:LINE:
field; a number that repeats a threshold is a warning."""
from __future__ import annotations

import re
from pathlib import Path


from cledecide.engine import prose
from cledecide.engine.ruleset import check_folder

from conftest import ROOT, RULES, cli, edit

def texts(folder: Path) -> list[str]:
    """Every prose string of the checked rule set: rules (generated too) and drugs."""
    ruleset, findings = check_folder(folder)
    assert ruleset is not None, findings
    out = [t for r in ruleset.rules for _, t in prose.strings(r.spec.model_dump())]
    out += [t for d in ruleset.drugs.values() for _, t in prose.strings(d.model_dump())]
    return out


def test_a_changed_threshold_changes_every_sentence(rules) -> None:
    def count(number: str, text: str) -> int:  # not 0.5 mg/kg
        return len(re.findall(rf"(?<![\d.]){number}(\.0)? mg/kg", text))
    before = " ".join(texts(rules))
    assert count("5", before) >= 7 and count("6", before) == 0
    edit(rules / "drugs.yaml", "mg_per_kg_per_day: 5.0", "mg_per_kg_per_day: 6.0")
    edit(rules / "ruleset.yaml", "  antimalarial_trial_months:\n    value: 3",
         "  antimalarial_trial_months:\n    value: 4")
    after = " ".join(texts(rules))
    assert count("5", after) == 0 and count("6", after) == count("5", before)
    assert "6.0 mg/kg" in after  # the placeholder's own format
    assert "judge efficacy at about 4 months" in after
    assert "judge efficacy at about 3 months" not in after
    # in the advice too: the step's summary of a patient in an antimalarial trial
    r = cli("rules", "show", "antimalarial.hydroxychloroquine.trial", rules)
    assert "about 4 months" in r.output


def test_the_shipped_rules_name_their_thresholds() -> None:
    raw = "".join(p.read_text() for p in RULES.glob("*.yaml"))
    prose_lines = [x for x in raw.splitlines() if not x.lstrip().startswith("#")]
    assert not [x for x in prose_lines if re.search(r"(?<![\w.{])5(\.0)? mg/kg", x)]
    assert raw.count("{hydroxychloroquine_max_mg_per_kg") >= 7
    r = cli("rules", "check", RULES, "--samples", "0", "--no-scenarios")
    assert r.exit_code == 0 and "number-in-prose" not in r.output, r.output


def test_an_unknown_placeholder_is_an_error_with_file_line_and_field(rules) -> None:
    edit(rules / "antimalarial.yaml", "{hydroxychloroquine_max_mg_per_kg} mg/kg real body",
         "{hydroxychloroquine_max_mg_per_kgg} mg/kg real body")
    r = cli("rules", "check", rules, "--samples", "0")
    assert r.exit_code == 2
    line = next(x for x in r.output.splitlines() if "unknown placeholder" in x)
    assert re.search(r"antimalarial\.yaml:\d+: rules\[\d+\]\.because: unknown placeholder "
                     r"\{hydroxychloroquine_max_mg_per_kgg\}", line)
    r = cli("evaluate", ROOT / "examples" / "hcq-inadequate.yaml", "--rules", rules)
    assert r.exit_code == 2 and "unknown placeholder" in r.output
    assert "Traceback" not in r.output


def test_a_number_that_repeats_a_threshold_is_a_warning(rules) -> None:
    edit(rules / "monitoring.yaml",
         "Hydroxychloroquine dose above {hydroxychloroquine_max_mg_per_kg} mg/kg",
         "Hydroxychloroquine dose above 5 mg/kg")
    r = cli("rules", "check", rules, "--samples", "0", "--no-scenarios")
    assert r.exit_code == 0
    found = [x for x in r.output.splitlines() if "number-in-prose" in x]
    assert len(found) == 1
    assert re.search(r"monitoring\.yaml:\d+: rules\[\d+\]\.then\.warn\.message: '5 mg/kg' "
                     r"repeats threshold hydroxychloroquine_max_mg_per_kg", found[0])
    # a source's own number, on purpose: {=...} is shown as written and not reported
    edit(rules / "monitoring.yaml", "Hydroxychloroquine dose above 5 mg/kg",
         "Hydroxychloroquine dose above {=5 mg/kg}")
    r = cli("rules", "check", rules, "--samples", "0", "--no-scenarios")
    assert "number-in-prose" not in r.output
    assert "Hydroxychloroquine dose above 5 mg/kg real body weight per day." in texts(rules)


def test_fill() -> None:
    values = {"a_months": 3.0, "b_max_mg_per_kg": 2.3, "c": 5.0}
    assert prose.fill("after {a_months} months", values) == ("after 3 months", [])
    assert prose.fill("{b_max_mg_per_kg} and {c:.1f}", values) == ("2.3 and 5.0", [])
    assert prose.fill("{stop_date[acitretin]} {current} {{x}}", values) == \
        ("{stop_date[acitretin]} {current} {{x}}", [])
    assert prose.fill("{=8 weeks} {nope} {c:zz}", values)[1] == ["{nope}", "{c:zz}"]
    assert prose.fill("{=8 weeks}", values)[0] == "8 weeks"


def test_advice_placeholders_match_what_the_advice_fills_in() -> None:
    """The check's list of per-patient placeholders is the engine's."""
    from cledecide.engine import texts as engine_texts
    assert set(engine_texts._MAKERS) <= prose.ADVICE_PLACEHOLDERS
    source = (ROOT / "engine" / "decide.py").read_text()
    call = source[source.index("values = Overlay("):]
    call = call[:call.index("return render_text")]
    assert set(re.findall(r"(\w+)=", call)) <= prose.ADVICE_PLACEHOLDERS


def test_a_signed_rule_with_placeholders_stays_approved_and_follows_its_threshold(
        rules) -> None:
    """`rules review` hashes a rule as the engine reads it (placeholders filled), so the
    approval holds; a changed threshold changes the sentence, so it goes stale."""
    from cledecide.engine.rulecache import load_ruleset
    from cledecide.engine.signoff import ruleset_units
    from cledecide.rulebook.records import write_review
    rid = "monitoring.hydroxychloroquine.dose-limit"
    write_review(rid, "approved", "Dr A", "dermatologist", "", rules)
    write_review("drug:hydroxychloroquine", "approved", "Dr A", "pharmacist", "", rules)
    states = {u.ref: u.state for u in ruleset_units(load_ruleset(rules))}
    assert states[rid] == "approved"
    assert states["drug:hydroxychloroquine"] == "approved"
    edit(rules / "drugs.yaml", "mg_per_kg_per_day: 5.0", "mg_per_kg_per_day: 6.0")
    states = {u.ref: u.state for u in ruleset_units(load_ruleset(rules))}
    assert states[rid] == "stale"
