"""Condition language: parsing, Kleene three-valued meaning, and the normal form."""
from __future__ import annotations

import pytest

from cledecide.engine import conditions as C
from cledecide.engine.facts import fact_specs
from cledecide.engine.rulecache import load_ruleset
from cledecide.engine.ruleset import default_rules_dir

# The shipped catalogue's drugs (their course facts) and classes.
DRUGS = load_ruleset(default_rules_dir()).drugs
VOCAB = C.Vocabulary(fact_specs(DRUGS), frozenset({"antimalarial_refractory"}),
                     {"severe_clasi_activity": 21.0})


def t(text_or_spec, facts, derived=()):
    node = C.parse(text_or_spec, VOCAB)
    return C.truth(node, facts, set(derived))


def test_numbers_and_thresholds() -> None:
    assert t("clasi_activity >= severe_clasi_activity", {"clasi_activity": 21}) is True
    assert t("clasi_activity >= severe_clasi_activity", {"clasi_activity": 20}) is False
    assert t("clasi_activity >= 21", {}) is None


def test_unknown_is_neither_true_nor_false() -> None:
    facts = {"pregnant": "unknown"}
    assert t("pregnant", facts) is None
    assert t("not pregnant", facts) is None
    assert t({"not": "pregnant"}, facts) is None
    assert t("pregnant is unknown", facts) is True
    assert t("pregnant == false", facts) is None


def test_not_equal_on_enum_excludes_unknown() -> None:
    assert t("contraception != none", {"contraception": "unknown"}) is None
    assert t("contraception != none", {"contraception": "one_method"}) is True
    assert t("contraception not in [none, one_method]",
             {"contraception": "abstinence"}) is True


def test_groups() -> None:
    spec = {"all": ["clasi_activity >= 10", {"any": ["pregnant", "smoker"]}]}
    assert t(spec, {"clasi_activity": 12, "pregnant": "no", "smoker": "yes"}) is True
    assert t(spec, {"clasi_activity": 12, "pregnant": "no", "smoker": "unknown"}) is None
    assert t(spec, {"clasi_activity": 5, "pregnant": "unknown"}) is False


def test_derived_facts() -> None:
    assert t("antimalarial_refractory", {}, {"antimalarial_refractory"}) is True
    assert t("antimalarial_refractory", {}) is False
    with pytest.raises(C.ConditionError, match="cannot be negated"):
        C.nnf(C.parse("not antimalarial_refractory", VOCAB), VOCAB)


@pytest.mark.parametrize("text, words", [
    ("clasi_activty >= 10", "unknown fact"),
    ("clasi_activity >= lots", "neither a number"),
    ("subtype == XYZ", "not a value"),
    ("subtype >= DLE", "not a number"),
    ("clasi_activity", "not a yes/no fact"),
    ("$gte clasi 10", "cannot read"),
])
def test_errors(text: str, words: str) -> None:
    with pytest.raises(C.ConditionError, match=words):
        C.parse(text, VOCAB)


def test_normal_form_keeps_meaning() -> None:
    """nnf(x) is true exactly when x is true, for a grid of known and unknown values."""
    spec = {"not": {"any": ["clasi_activity >= 10", {"all": ["pregnant", "smoker"]}]}}
    node = C.parse(spec, VOCAB)
    normal = C.nnf(node, VOCAB)
    for clasi in (None, 5, 10, 30):
        for preg in ("yes", "no", "unknown"):
            for smoke in ("yes", "no", "unknown"):
                facts = {"pregnant": preg, "smoker": smoke}
                if clasi is not None:
                    facts["clasi_activity"] = clasi
                assert (C.truth(node, facts, set()) is True) == \
                    (C.truth(normal, facts, set()) is True)


def test_branches_split_only_on_derived_facts() -> None:
    spec = {"all": ["clasi_activity >= 10",
                    {"any": ["antimalarial_refractory", "smoker"]},
                    {"any": ["pregnant", "breastfeeding"]}]}
    branches = C.branches(C.nnf(C.parse(spec, VOCAB), VOCAB))
    assert len(branches) == 2
    assert branches[0].derived == ("antimalarial_refractory",)
    assert branches[1].derived == ()
