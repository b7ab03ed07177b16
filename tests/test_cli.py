"""The command line: thin, exit codes 0/1/2, one-line errors, never a traceback."""
from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from cledecide.cli.main import app

from conftest import EXAMPLES, RULES

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args))


def test_evaluate_text_and_json() -> None:
    r = cli("evaluate", str(EXAMPLES / "hcq-inadequate.yaml"))
    assert r.exit_code == 0
    assert r.output.startswith("NEXT STEP (antimalarial): Add quinacrine")
    r = cli("evaluate", str(EXAMPLES / "hcq-inadequate.yaml"), "--format", "json")
    assert json.loads(r.output)["recommendation"]["drug"] == "quinacrine"


def test_default_rules_are_the_shipped_ones() -> None:
    a = cli("evaluate", str(EXAMPLES / "hcq-inadequate.yaml"), "-f", "json")
    b = cli("evaluate", str(EXAMPLES / "hcq-inadequate.yaml"), "-f", "json", "--rules", str(RULES))
    assert json.loads(a.output)["ruleset"] == json.loads(b.output)["ruleset"]


@pytest.mark.parametrize("content, expect", [
    (b"id: [", "YAML syntax"),
    (b"- 1\n", "bad.yaml:1: a patient record must be a mapping"),
    (b"\xff\xfe", "bad.yaml: not UTF-8"),
])
def test_bad_input_one_line_exit_2(tmp_path, content, expect) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    r = cli("evaluate", str(path))
    assert r.exit_code == 2
    assert expect in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert "Traceback" not in r.output


def test_missing_file_exit_2(tmp_path) -> None:
    r = cli("evaluate", str(tmp_path / "none.yaml"))
    assert r.exit_code == 2 and "file not found" in r.output


def test_broken_rules_stop_evaluation(tmp_path) -> None:
    broken = tmp_path / "rules"
    shutil.copytree(RULES, broken)
    path = broken / "topical.yaml"
    path.write_text(path.read_text().replace("topical_corticosteroid_status == never",
                                             "topical_corticosteroid_status == sometimes"))
    r = cli("evaluate", str(EXAMPLES / "mild-localized-dle.yaml"), "--rules", str(broken))
    assert r.exit_code == 2
    assert "topical.yaml:" in r.output and "sometimes" in r.output
    assert "NEXT STEP" not in r.output


def test_internal_error_exit_1(monkeypatch) -> None:
    import cledecide.cli.main as main

    def boom(*args, **kwargs):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(main, "evaluate_file", boom)
    r = cli("evaluate", str(EXAMPLES / "hcq-inadequate.yaml"))
    assert r.exit_code == 1
    assert "internal error: ZeroDivisionError" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("kind", ["patient", "result", "rules", "reproductive-templates"])
def test_schema_command(kind: str) -> None:
    r = cli("schema", kind)
    assert r.exit_code == 0
    doc = json.loads(r.output)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_patient_schema_accepts_examples() -> None:
    import jsonschema
    import yaml
    from cledecide.schemas import schema
    validator = jsonschema.Draft202012Validator(schema("patient"))
    for path in EXAMPLES.glob("*.yaml"):
        if path.name != "expected.yaml":
            data = json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))
            validator.validate(data)


def test_rule_file_schemas_accept_the_shipped_rule_files() -> None:
    """What an editor checks a rule file against is what the engine accepts."""
    import jsonschema
    import yaml
    from cledecide.schemas import schema
    for kind, name in (("reproductive-templates", "reproductive-templates.yaml"),
                       ("drugs", "drugs.yaml"), ("rules", "safety.yaml")):
        data = json.loads(json.dumps(yaml.safe_load((RULES / name).read_text()), default=str))
        jsonschema.Draft202012Validator(schema(kind)).validate(data)
