"""Compile + evaluate: durable_rules behind one module, one isolated session a patient."""
from __future__ import annotations

import ast

from cledecide.engine import compile as compile_mod
from cledecide.engine.compile import compile_rules
from cledecide.engine.evaluate import evaluate
from cledecide.engine.validate import validate_patient
from cledecide.engine.load import parse

import yaml

from conftest import ROOT, patient, run


def model(data):
    return validate_patient(parse(yaml.safe_dump(data).encode(), "t.yaml"))


def test_only_compile_imports_durable_rules() -> None:
    importers = []
    for path in list((ROOT / "engine").glob("*.py")) + list((ROOT / "cli").glob("*.py")) \
            + list((ROOT / "api").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "durable" or n.startswith("durable.") for n in names):
                importers.append(path.name)
    assert importers == ["compile.py"]


def test_compiled_once_per_ruleset(ruleset) -> None:
    assert compile_rules(ruleset) is compile_rules(ruleset)


def test_sessions_are_removed_after_each_patient(ruleset) -> None:
    compiled = compile_rules(ruleset)
    for _ in range(20):
        evaluate(model(patient()), compiled)
    assert compiled._sessions == {}
    last = next(compile_mod._sids) - 1
    import pytest
    with pytest.raises(Exception, match="309"):  # durable_rules: no such session
        compiled._durable.get_state(str(last))


def test_forward_chaining_derives_refractory(ruleset) -> None:
    from conftest import REFRACTORY_HISTORY
    ev = evaluate(model(patient(treatments=REFRACTORY_HISTORY)), compile_rules(ruleset))
    assert {"hydroxychloroquine_failed", "quinacrine_failed", "antimalarial_refractory",
            "immunosuppressant_failed", "immunosuppressant_refractory"} <= ev.derived
    chain = [f.rule.id for f in ev.fired]
    assert chain.index("antimalarial.refractory.after-quinacrine") < \
        chain.index("immunosuppressant.refractory")


def test_trace_matches_name_the_facts(ruleset) -> None:
    result = run(patient(**{"activity": [{"date": "2026-11-20", "clasi_activity": 25}]}))
    severe = [t for t in result["trace"] if t["rule"] == "general.severe-disease"]
    assert severe and severe[0]["matched"] == {"clasi_activity": 25}
    assert severe[0]["asserted"] == "severe_disease" and severe[0]["kind"] == "derive"


def test_python_meaning_equals_durable_firing(ruleset) -> None:
    """For the examples, every rule durable_rules fired is true by the Python meaning of
    its condition, and no silent rule is true: the compiler keeps the meaning."""
    from cledecide.engine import conditions as C
    compiled = compile_rules(ruleset)
    for path in (ROOT / "examples").glob("*.yaml"):
        if path.name == "expected.yaml":
            continue
        ev = evaluate(validate_patient(parse(path.read_bytes(), str(path))), compiled)
        for rule in ruleset.rules:
            fired = rule.id in ev.fired_ids()
            assert (C.truth(rule.condition, ev.facts, ev.derived) is True) == fired, \
                (path.name, rule.id)


def test_action_errors_surface(ruleset, monkeypatch) -> None:
    """An exception inside a rule action is reported, not silently swallowed."""
    import pytest
    compiled = compile_rules(ruleset)

    def boom(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(compile_mod, "Firing", boom)
    with pytest.raises(RuntimeError, match="rule action failed") as info:
        evaluate(model(patient()), compiled)
    assert compiled._sessions == {}
    assert "clasi" not in str(info.value)  # no patient data in the message


def test_catch_all_added_only_when_no_rule_always_fires(tmp_path) -> None:
    """durable_rules can crash deleting a session where no action ran: some rule must
    fire for every patient. Without a `when: always` rule the compiler adds one."""
    import shutil
    from cledecide import load_ruleset
    from conftest import RULES
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    general = folder / "general.yaml"
    general.write_text(general.read_text().replace("when: always", "when: smoker"))
    # The relapse derivations fire for every patient with a CLASI: made to need smoking.
    monitoring = folder / "monitoring.yaml"
    text = monitoring.read_text()
    seen = "      any:\n        - clasi_activity is unknown"
    assert seen in text
    monitoring.write_text(text.replace(seen, "      all:\n        - smoker\n"
                                             "        - clasi_activity is unknown"))
    ruleset = load_ruleset(folder)
    compiled = compile_rules(ruleset)
    assert "r_done" in compiled._definition()
    assert "r_done" not in compile_rules(load_ruleset(RULES))._definition()
    quiet = patient(smoker=False, activity=[{"date": "2026-11-20", "clasi_activity": 2}],
                    **{"diagnosis.extent": "localized",
                       "diagnosis.subtype": "SCLE"},
                    treatments=[{"drug": "topical_corticosteroid", "start": "2026-01-01",
                                 "response": "complete"},
                                {"drug": "topical_calcineurin_inhibitor",
                                 "start": "2026-01-01", "response": "complete"}])
    ev = evaluate(model(quiet), compiled)
    assert ev.fired == () and compiled._sessions == {}
