"""Load stage: bad files give one clear error with file and line, never a traceback."""
from __future__ import annotations

import pytest

from cledecide.engine.errors import InputError
from cledecide.engine.load import MAX_FILE_BYTES, load_file, parse


def err(raw: bytes) -> InputError:
    with pytest.raises(InputError) as info:
        parse(raw, "p.yaml")
    return info.value


def test_lines_are_kept_for_every_field() -> None:
    doc = parse(b"id: a\ntreatments:\n  - drug: x\n    dose: 3\n", "p.yaml")
    assert doc.line_of(("treatments", 0, "dose")) == 4
    assert doc.line_of(("treatments", 0)) == 3
    assert doc.line_of(("treatments", 0, "missing")) == 3


def test_duplicate_keys_are_rejected() -> None:
    e = err(b"id: a\nas_of: 2026-01-01\nid: b\n")
    assert e.line == 3 and e.field == "id" and "duplicate" in e.message


def test_python_tags_are_rejected() -> None:
    e = err(b"id: !!python/object/apply:os.system ['echo hi']\n")
    assert "unsupported YAML" in e.message and e.line == 1


def test_alias_bomb_is_capped() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        name = chr(ord("a") + i)
        lines.append(f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, "
                     f"*{prev}, *{prev}, *{prev}, *{prev}, *{prev}]")
    e = err("\n".join(lines).encode())
    assert "too large" in e.message


@pytest.mark.parametrize("raw, words", [
    (b"", "empty"),
    (b"\x00\x01\x02", "binary"),
    (b"id: \xff\xfe\n", "UTF-8"),
    (b"id: [unclosed\n", "YAML syntax"),
    (b"id: 2026-02-30\n", "invalid value"),
])
def test_unreadable_files(raw: bytes, words: str) -> None:
    assert words in err(raw).message


def test_file_size_limit(tmp_path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(InputError, match="limit"):
        load_file(big)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_file(tmp_path / "nope.yaml")


def test_hash_is_of_the_bytes() -> None:
    import hashlib
    raw = b"id: a\n"
    assert parse(raw, "p").sha256 == hashlib.sha256(raw).hexdigest()
