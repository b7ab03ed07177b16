"""The reviewer's edit loop (issue 24): a checkout's edits take effect and every output
names the rules folder it used; drugs are data; thresholds named in prose; the diff
shows doses; priorities read relative to each other."""
from __future__ import annotations

import json
from pathlib import Path


from cledecide import default_rules_dir, evaluate_file, load_ruleset, to_json, to_text

from conftest import EXAMPLES, RULES, cli

# ------------------------------------------------------------ edits take effect

def test_a_checkout_reads_its_own_rules() -> None:
    """`make install` installs the checkout editable: without --rules, every command
    reads this checkout's rules/, and `rules show` points at its file."""
    assert default_rules_dir().resolve() == RULES.resolve()
    r = cli("rules", "show", "general.sun-protection")
    assert r.exit_code == 0, r.output
    assert f"({RULES.resolve() / 'general.yaml'}:" in r.output.splitlines()[0]


def test_every_result_names_the_folder_its_rules_came_from(rules, monkeypatch) -> None:
    import jsonschema
    from cledecide.schemas import schema
    mine = rules.parent / "my rules"
    rules.rename(mine)
    monkeypatch.chdir(mine.parent)
    ex = evaluate_file(EXAMPLES / "hcq-inadequate.yaml", Path("my rules"))
    assert "from my rules/, sha256" in " ".join(to_text(ex).split())
    data = json.loads(to_json(ex))
    assert data["ruleset"]["folder"] == "my rules"
    jsonschema.Draft202012Validator(schema("result")).validate(data)
    # from elsewhere the folder is absolute: never a path that reads differently there
    monkeypatch.chdir(EXAMPLES)
    data = json.loads(to_json(evaluate_file(EXAMPLES / "hcq-inadequate.yaml",
                                            mine.resolve())))
    assert data["ruleset"]["folder"] == str(mine.resolve())


def test_a_patient_with_no_advice_names_the_rules_folder_too(monkeypatch) -> None:
    from cledecide.fhir_r4.noadvice import NoAdvice, no_advice_result
    monkeypatch.chdir(RULES.parent)
    result = no_advice_result(NoAdvice("deceased", "p1", "2026-11-20", "deceased"),
                              load_ruleset(RULES), "0" * 64)
    assert result.data["ruleset"]["folder"] == "rules"
    assert "from rules/, sha256" in result.text()
