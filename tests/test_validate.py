"""Validate stage: contract errors name file, line and field path; exit code is the CLI's."""
from __future__ import annotations

import pytest
import yaml

from cledecide.engine.errors import InputError
from cledecide.engine.load import parse
from cledecide.engine.validate import validate_patient

from conftest import BASE, patient


def check(data) -> InputError:
    raw = yaml.safe_dump(data, sort_keys=False).encode() if not isinstance(data, bytes) else data
    with pytest.raises(InputError) as info:
        validate_patient(parse(raw, "patient.yaml"))
    return info.value


def test_valid_baseline() -> None:
    p = validate_patient(parse(yaml.safe_dump(BASE).encode(), "p.yaml"))
    assert p.demographics.weight_kg == 70


def test_contract_example_message() -> None:
    data = patient(treatments=[{"drug": "hydroxychloroquine", "dose_mg_per_day": "lots",
                                "start": "2025-01-01"}])
    e = check(data)
    assert e.field == "treatments[0].dose_mg_per_day"
    assert e.message == "must be a number, got 'lots'"
    assert str(e).startswith("patient.yaml:") and e.line is not None


@pytest.mark.parametrize("changes, field, words", [
    ({"extra": 1}, "extra", "unknown field"),
    ({"demographics.age": 130}, "demographics.age", "<= 120"),
    ({"demographics.weight_kg": 1}, "demographics.weight_kg", ">= 2"),
    ({"conditions": ["gout"]}, "conditions[0]", "must be one of"),
    ({"symptoms": ["hiccups"]}, "symptoms[0]", "must be one of"),
    ({"diagnosis.subtype": "XYZ"}, "diagnosis.subtype", "must be one of"),
    ({"reproductive.pregnant": "maybe"}, "reproductive.pregnant", ""),
    ({"activity": [{"date": "2026-12-01", "clasi_activity": 3}]}, "activity[0].date",
     "after as_of"),
    ({"activity": [{"date": "2026-11-01", "clasi_activity": 71}]},
     "activity[0].clasi_activity", "<= 70"),
    ({"id": None}, "id", ""),
    ({"demographics.sex": "male", "reproductive.pregnant": True}, "reproductive.pregnant",
     "male"),
    ({"reproductive.contraception_since": "2026-12-01"}, "reproductive.contraception_since",
     "after as_of"),
    ({"reproductive.negative_pregnancy_tests": ["2026-11-01", "2027-01-01"]},
     "reproductive.negative_pregnancy_tests[1]", "after as_of"),
    ({"labs.creatinine": {"value": 80, "date": "2026-12-24"}}, "labs.creatinine.date",
     "after as_of"),
])
def test_invalid_fields(changes, field, words) -> None:
    e = check(patient(**changes))
    assert e.field == field
    assert words in e.message


def test_unknown_drug() -> None:
    e = check(patient(treatments=[{"drug": "aspirin", "start": "2025-01-01"}]))
    assert e.field == "treatments[0].drug" and "aspirin" in e.message


def test_stop_before_start() -> None:
    e = check(patient(treatments=[{"drug": "dapsone", "start": "2025-01-01",
                                   "stop": "2024-01-01"}]))
    assert e.field == "treatments[0]" and "before start" in e.message


def test_missing_required_field() -> None:
    data = patient()
    del data["as_of"]
    e = check(data)
    assert e.field == "as_of" and "required" in e.message


def test_list_instead_of_mapping() -> None:
    e = check(b"- a\n- b\n")
    assert "mapping" in e.message and e.line == 1


def test_strings_are_not_numbers() -> None:
    e = check(patient(**{"demographics.age": "50"}))
    assert e.field == "demographics.age" and "number" in e.message


def test_json_input_is_accepted() -> None:
    import json
    raw = json.dumps(BASE).encode()
    assert validate_patient(parse(raw, "p.json")).id == "test-patient"
