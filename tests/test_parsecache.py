"""The parsed-rules cache (engine/parsecache.py): used when it checks out, ignored when
it does not, never able to change what the rules say."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cledecide.engine import load as load_module
from cledecide.engine import parsecache
from cledecide.engine.ruleset import check_folder

from conftest import RULES


def load_ruleset(folder):
    """The checked rule set through the parse cache (the rule-set cache is off here:
    tests/test_rulecache.py covers it)."""
    ruleset, findings = check_folder(folder)
    if ruleset is None:
        from cledecide.engine.errors import RuleError
        first = next(f for f in findings if f.severity == "error")
        raise RuleError(first.message, first.file, first.line, first.field)
    return ruleset


def read_entry(path: Path) -> dict:
    digest, _, body = path.read_bytes().partition(b"\n")
    return json.loads(body)


def write_entry(path: Path, entry: dict, digest: str | None = None) -> None:
    import hashlib
    body = json.dumps(entry).encode()
    path.write_bytes((digest or hashlib.sha256(body).hexdigest()).encode() + b"\n" + body)


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CLEDECIDE_NO_CACHE", raising=False)
    return tmp_path / "cache" / "cledecide" / "parsed"


def _no_yaml(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the YAML parser ran")
    monkeypatch.setattr(load_module, "_parse_yaml", refuse)


def test_second_load_uses_the_cache_and_gives_the_same_rule_set(cache, monkeypatch) -> None:
    first = load_ruleset(RULES)
    assert len(list(cache.glob("*.json"))) >= 10
    _no_yaml(monkeypatch)
    second = load_ruleset(RULES)
    assert second.sha256 == first.sha256
    assert [r.id for r in second.rules] == [r.id for r in first.rules]
    assert second.thresholds == first.thresholds


def test_an_altered_entry_is_ignored(cache, tmp_path, monkeypatch) -> None:
    load_ruleset(RULES)
    for path in cache.glob("*.json"):
        entry = read_entry(path)
        if "ruleset" in json.dumps(entry["data"])[:40] or "thresholds" in entry["data"]:
            entry["data"]["thresholds"] = {}  # a forged change, digest left as it was
            write_entry(path, entry, digest=path.read_bytes().split(b"\n", 1)[0].decode())
    calls = []
    real = load_module._parse_yaml
    monkeypatch.setattr(load_module, "_parse_yaml",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    again = load_ruleset(RULES)
    assert again.thresholds  # parsed again, not the forged entry
    assert calls


def test_corrupt_or_foreign_entries_are_ignored(cache) -> None:
    load_ruleset(RULES)
    entries = sorted(cache.glob("*.json"))
    entries[0].write_text("{not json")
    write_entry(entries[1], read_entry(entries[2]))  # another file's entry, own digest
    assert load_ruleset(RULES).sha256 == load_ruleset(RULES).sha256


def test_a_changed_rule_file_misses_the_cache(cache, tmp_path) -> None:
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    before = load_ruleset(folder)
    path = folder / "general.yaml"
    path.write_text(path.read_text().replace("priority: 91", "priority: 92"))
    after = load_ruleset(folder)
    assert after.sha256 != before.sha256
    assert after.by_id["general.drug-trigger.stop"].spec.priority == 92


def test_errors_keep_their_lines_from_the_cache(cache, tmp_path) -> None:
    from cledecide.engine.errors import RuleError
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    path = folder / "general.yaml"
    path.write_text(path.read_text().replace("priority: 91", "priority: 191"))
    messages = []
    for _ in range(2):  # the second time from the cache
        with pytest.raises(RuleError) as err:
            load_ruleset(folder)
        messages.append(str(err.value))
    assert messages[0] == messages[1] and "general.yaml:" in messages[0]


def test_writable_by_others_is_not_trusted(cache, monkeypatch) -> None:
    load_ruleset(RULES)
    for path in cache.glob("*.json"):
        path.chmod(0o666)
    _no_yaml(monkeypatch)
    with pytest.raises(AssertionError, match="the YAML parser ran"):
        load_ruleset(RULES)


def test_no_cache_when_turned_off(cache, monkeypatch) -> None:
    monkeypatch.setenv("CLEDECIDE_NO_CACHE", "1")
    load_ruleset(RULES)
    assert not cache.exists()


def test_a_nan_is_never_cached(cache) -> None:
    """JSON has no NaN (orjson writes null): a file with one is parsed, and refused by
    the checks, every time, never turned into something else by the cache."""
    from cledecide.engine.load import Document
    raw = b"value: .nan\n"
    parsecache.put(raw, Document(file="x.yaml", data={"value": float("nan")}, lines={},
                                 sha256=""))
    assert not cache.exists() or not list(cache.glob("*.json"))
