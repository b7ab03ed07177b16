"""The checked-rule-set cache (engine/rulecache.py): a second start skips the checks
only when the files and the code are the same, and gives the very same rule set."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from cledecide.engine import rulecache, ruleset as ruleset_module
from cledecide.engine.errors import RuleError
from cledecide.engine.rulecache import load_ruleset
from cledecide.engine.ruleset import check_folder

from conftest import RULES


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CLEDECIDE_NO_CACHE", raising=False)
    return tmp_path / "cache" / "cledecide" / "rulesets"


@pytest.fixture()
def rules(tmp_path) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    return folder


def _no_check(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the rules were checked again")
    monkeypatch.setattr(ruleset_module, "check_folder", refuse)


def _entry(cache: Path) -> Path:
    entries = list(cache.glob("*.json"))
    assert len(entries) == 1
    return entries[0]


def test_second_load_is_the_same_rule_set_without_the_checks(cache, rules,
                                                             monkeypatch) -> None:
    checked, _ = check_folder(rules)
    first = load_ruleset(rules)
    _entry(cache)
    _no_check(monkeypatch)
    second = load_ruleset(rules)
    assert second == checked == first
    assert second is not first
    # What evaluation reads, field by field, not only dataclass equality:
    for a, b in zip(checked.rules, second.rules):
        assert a.spec.model_dump() == b.spec.model_dump()
        assert (a.condition, a.normal, a.file, a.line) == (b.condition, b.normal, b.file, b.line)
    assert {k: v.model_dump() for k, v in checked.drugs.items()} == \
        {k: v.model_dump() for k, v in second.drugs.items()}


def test_the_same_advice_from_the_cache(cache, rules) -> None:
    from cledecide import evaluate_file
    from conftest import EXAMPLES
    files = sorted(p for p in EXAMPLES.glob("*.yaml") if p.name != "expected.yaml")
    fresh = [evaluate_file(p, rules).result.model_dump() for p in files]
    again = [evaluate_file(p, rules).result.model_dump() for p in files]
    _entry(cache)
    assert fresh == again and len(fresh) >= 5


def test_a_changed_rule_file_misses_the_cache(cache, rules) -> None:
    before = load_ruleset(rules)
    path = rules / "general.yaml"
    path.write_text(path.read_text().replace("priority: 91", "priority: 92"))
    after = load_ruleset(rules)
    assert after.sha256 != before.sha256
    assert after.by_id["general.drug-trigger.stop"].spec.priority == 92
    assert len(list(cache.glob("*.json"))) == 2


def test_a_new_file_in_the_folder_misses_the_cache(cache, rules) -> None:
    before = load_ruleset(rules)
    (rules / "general.yaml").rename(rules / "general-copy.yaml")
    after = load_ruleset(rules)
    assert after.sha256 != before.sha256
    assert {r.file for r in after.rules} != {r.file for r in before.rules}


def test_changed_engine_code_misses_the_cache(cache, rules, monkeypatch) -> None:
    load_ruleset(rules)
    monkeypatch.setattr(rulecache, "_code_digest", lambda: "another version of the engine")
    monkeypatch.setattr(ruleset_module, "check_folder",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("checked")))
    with pytest.raises(AssertionError, match="checked"):
        load_ruleset(rules)


def test_the_code_digest_covers_the_engine_modules() -> None:
    engine = Path(rulecache.__file__).parent
    names = {p.name for p in engine.glob("*.py")}
    assert {"ruleset.py", "conditions.py", "catalogue.py", "facts.py", "rulecache.py"} <= names
    rulecache._code_digest.cache_clear()
    assert rulecache._code_digest() == rulecache._code_digest()


@pytest.mark.parametrize("damage", ["digest", "corrupt", "foreign", "folder", "mode"])
def test_a_damaged_or_foreign_entry_is_ignored(cache, rules, tmp_path, monkeypatch,
                                               damage) -> None:
    load_ruleset(rules)
    path = _entry(cache)
    digest, _, body = path.read_bytes().partition(b"\n")
    entry = json.loads(body)
    if damage == "digest":  # a forged change, digest left as it was
        entry["thresholds"] = {k: v * 2 for k, v in entry["thresholds"].items()}
        path.write_bytes(digest + b"\n" + json.dumps(entry).encode())
    elif damage == "corrupt":
        path.write_bytes(digest + b"\n" + body[: len(body) // 2])
    elif damage in ("foreign", "folder"):  # well-formed, own digest, another key or place
        entry["key" if damage == "foreign" else "folder"] = "elsewhere"
        new = json.dumps(entry).encode()
        path.write_bytes(hashlib.sha256(new).hexdigest().encode() + b"\n" + new)
    else:
        path.chmod(0o666)
    checked = []
    real = ruleset_module.check_folder
    monkeypatch.setattr(ruleset_module, "check_folder",
                        lambda *a, **k: checked.append(1) or real(*a, **k))
    again = load_ruleset(rules)
    assert checked, "the damaged entry was used"
    assert again == real(rules)[0]


def test_a_nan_in_a_rule_file_is_an_error_every_time_and_never_cached(cache, rules) -> None:
    path = rules / "ruleset.yaml"
    text = path.read_text()
    assert "    value: 10\n" in text
    path.write_text(text.replace("    value: 10\n", "    value: .nan\n", 1))
    messages = []
    for _ in range(2):
        with pytest.raises(RuleError) as err:
            load_ruleset(rules)
        messages.append(str(err.value))
    assert messages[0] == messages[1] and "ruleset.yaml:" in messages[0]
    assert not cache.exists() or not list(cache.glob("*.json"))


def test_not_kept_when_the_files_changed_while_checking(cache, rules) -> None:
    found = rulecache.probe(rules)
    path = rules / "general.yaml"
    path.write_text(path.read_text().replace("priority: 91", "priority: 92"))
    rulecache.put(found, check_folder(rules)[0])
    assert not cache.exists() or not list(cache.glob("*.json"))


def test_no_cache_when_turned_off(cache, rules, monkeypatch) -> None:
    monkeypatch.setenv("CLEDECIDE_NO_CACHE", "1")
    load_ruleset(rules)
    assert not cache.exists()


def test_the_command_line_gives_the_same_bytes_with_and_without_the_cache(tmp_path) -> None:
    """End to end: a process that loads the cached rule set compiles and evaluates it to
    exactly the output of one that checked the files."""
    import os
    import subprocess
    from conftest import EXAMPLES
    from test_cohort import CLI
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop("CLEDECIDE_NO_CACHE", None)
    outputs = []
    for extra in ({"CLEDECIDE_NO_CACHE": "1"}, {}, {}):  # unchecked, miss, hit
        for name in ("refractory-pregnancy-unknown.yaml", "lenalidomide-relapse.yaml"):
            proc = subprocess.run([CLI, "evaluate", str(EXAMPLES / name), "--format", "json"],
                                  capture_output=True, env=dict(env, **extra), timeout=120)
            assert proc.returncode == 0, proc.stderr
            outputs.append(proc.stdout)
    assert outputs[:2] == outputs[2:4] == outputs[4:]
    assert list((tmp_path / "cache" / "cledecide" / "rulesets").glob("*.json"))


def test_old_entries_are_pruned(cache, rules, monkeypatch) -> None:
    monkeypatch.setattr(rulecache, "KEEP", 2)
    path = rules / "general.yaml"
    text = path.read_text()
    for priority in (92, 93, 94):
        path.write_text(text.replace("priority: 91", f"priority: {priority}"))
        load_ruleset(rules)
    assert len(list(cache.glob("*.json"))) == 2
    assert load_ruleset(rules).by_id["general.drug-trigger.stop"].spec.priority == 94


def test_the_rule_set_hash_covers_the_rules_generated_from_drugs_yaml(monkeypatch) -> None:
    """Every result names the rule set's sha256: a change to the rules generated from
    drugs.yaml (engine/catalogue.py) changes it although no rules file changed."""
    from cledecide.engine import catalogue
    before, _ = check_folder(RULES)
    real = catalogue.generated_rules

    def changed(*args, **kwargs):
        out = list(real(*args, **kwargs))
        out[0] = dict(out[0], because=out[0]["because"] + " (changed)")
        return out
    monkeypatch.setattr(catalogue, "generated_rules", changed)
    after, _ = check_folder(RULES)
    assert after.files_sha256 == before.files_sha256
    assert after.sha256 != before.sha256
