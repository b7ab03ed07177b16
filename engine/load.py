"""Load stage: read YAML (or JSON) safely, keeping the line of every field.

PyYAML's safe loader is used for scalars, but the tree is built here so that we can
reject duplicate keys (PyYAML silently keeps the last), cap the expansion of aliases
(alias bombs), and remember where each field was written for error messages.
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import CledecideError, InputError

MAX_FILE_BYTES = 1_000_000
# A patient input may be a FHIR export: those are bounded by entries and nesting (the
# code map's limits), and by this many bytes only as a guard of memory (a 10 MB Synthea
# bundle is ordinary). CLEDECIDE_MAX_INPUT_MB changes it.
MAX_INPUT_BYTES = 100_000_000
MAX_NODES = 50_000

Path_ = tuple[str | int, ...]
# libyaml's parser when PyYAML has it (much faster); the safe constructor either way.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAP_TAG, SEQ_TAG = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
INT_TAG, FLOAT_TAG, BOOL_TAG = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                                "tag:yaml.org,2002:bool")
# The YAML 1.2 core schema's forms. PyYAML reads YAML 1.1, where '017' is octal 15,
# '1:11' is sexagesimal 71 and 'yes' is true: a plain scalar that 1.1 reads as a
# number or boolean but 1.2 does not (or reads differently) is refused, never guessed.
_CORE_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)$")
_CORE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_CORE_BOOL = ("true", "false", "True", "False", "TRUE", "FALSE")


@dataclass(frozen=True)
class Document:
    """A parsed file: its data, the line of each field path, and its bytes' hash."""

    file: str
    data: Any
    lines: Mapping[Path_, int] = field(default_factory=dict)
    sha256: str = ""

    def line_of(self, path: Path_) -> int | None:
        """The line of a field, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


def format_path(path: Path_) -> str:
    """``('treatments', 0, 'dose')`` -> ``treatments[0].dose``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class _Builder:
    def __init__(self, loader: Any, file: str, error: type[CledecideError]):
        self.loader = loader
        self.file = file
        self.error = error
        self.lines: dict[Path_, int] = {}
        self.count = 0

    def fail(self, node: yaml.Node, path: Path_, message: str) -> CledecideError:
        return self.error(message, self.file, node.start_mark.line + 1,
                          format_path(path) or None)

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(node, path, f"document too large or too deeply aliased "
                                        f"(more than {MAX_NODES} values)")
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and \
                node.tag not in (MAP_TAG, SEQ_TAG):
            raise self.fail(node, path, f"unsupported YAML: tag {node.tag}")
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.fail(key_node, path, "keys must be plain words")
                key = self.construct_scalar(key_node, path)
                if not isinstance(key, (str, int, bool)) or isinstance(key, bool):
                    key = str(key)
                key = str(key)
                if key in out:
                    raise self.fail(key_node, path + (key,), "duplicate key")
                child = path + (key,)
                self.lines[child] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        return self.construct_scalar(node, path)

    def construct_scalar(self, node: yaml.Node, path: Path_) -> Any:
        plain = getattr(node, "style", None) in (None, "")  # libyaml: '' for plain
        implicit = self.loader.resolve(yaml.ScalarNode, node.value, (plain, not plain))
        if node.tag != implicit:
            raise self.fail(node, path, f"unsupported YAML: tag {node.tag}")
        if plain:
            text = node.value
            if node.tag == INT_TAG and not _CORE_INT.match(text):
                raise self.fail(node, path, f"ambiguous number '{text}' (YAML 1.1 reads it "
                                            "differently): write a plain decimal number")
            if node.tag == FLOAT_TAG and not _CORE_FLOAT.match(text):
                raise self.fail(node, path, f"not a finite decimal number: '{text}'")
            if node.tag == BOOL_TAG and text not in _CORE_BOOL:
                raise self.fail(node, path, f"ambiguous value '{text}': write true or false")
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            problem = (exc.problem or "unsupported value").split(" in ")[0]
            raise self.fail(node, path, f"unsupported YAML: {problem}") from None
        except ValueError as exc:  # e.g. an impossible date such as 2026-02-30
            raise self.fail(node, path, f"invalid value: {exc}") from None


def read_bytes(path: Path, error: type[CledecideError] = InputError,
               limit: int = MAX_FILE_BYTES) -> bytes:
    """Read a file, refusing what is too large to be a patient record or rule file."""
    name = str(path)
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise error("is a folder, not a file", name)
        if not stat.S_ISREG(info.st_mode):
            raise error("not a regular file (a device, pipe or socket is refused)", name)
        if info.st_size > limit:
            raise error(f"file is {info.st_size} bytes; the limit is {limit}", name)
        # O_NONBLOCK: a file swapped for a FIFO after the check cannot block the read.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise error("not a regular file (a device, pipe or socket is refused)", name)
            raw = handle.read(limit + 1)
    except CledecideError:
        raise
    except FileNotFoundError:
        raise error("file not found", name) from None
    except IsADirectoryError:
        raise error("is a folder, not a file", name) from None
    except PermissionError:
        raise error("permission denied", name) from None
    except OSError as exc:  # a symlink loop, ENOTDIR, ENAMETOOLONG, EIO ...
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, "cannot read")
        raise error(f"cannot read: {reason.lower()}", name) from None
    if len(raw) > limit:
        raise error(f"file is larger than the limit of {limit} bytes", name)
    return raw


def parse(raw: bytes, file: str, error: type[CledecideError] = InputError) -> Document:
    """Parse YAML (JSON is YAML) into a Document; every failure is one clear error."""
    digest = hashlib.sha256(raw).hexdigest()
    if b"\x00" in raw:
        raise error("binary file, not YAML or JSON text", file)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text (byte {exc.start})", file) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if text.lstrip()[:1] in ("{", "["):
        return _parse_json(text, file, error, digest)
    return _parse_yaml(text, file, error, digest)


def _reject_constant(word: str) -> Any:
    raise ValueError(f"{word} is not a finite number")


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key '{key}'")
        out[key] = value
    return out


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number is too large to be finite")
    return value


class _LazyLines(Mapping):
    """The line of each field of a JSON document, found by reading the text again as
    YAML only when a line is asked for (an error message): a large JSON input (a FHIR
    bundle of several MB) is parsed once, by the JSON parser."""

    def __init__(self, text: str, file: str, error: type[CledecideError], digest: str):
        self._args: tuple[Any, ...] | None = (text, file, error, digest)
        self._lines: Mapping[Path_, int] = {}

    def _load(self) -> Mapping[Path_, int]:
        if self._args is not None:
            args, self._args = self._args, None
            try:
                self._lines = _parse_yaml(*args).lines
            except CledecideError:
                self._lines = {}
        return self._lines

    def __getitem__(self, key: Path_) -> int:
        return self._load()[key]

    def __iter__(self):
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


def _parse_json(text: str, file: str, error: type[CledecideError], digest: str) -> Document:
    """JSON through a JSON parser (exponents, no YAML 1.1 surprises); the lines of its
    fields come from the YAML reading of the same text, when an error needs one."""
    try:
        data = json.loads(text, object_pairs_hook=_json_pairs,
                          parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise error(f"JSON syntax: {exc.msg}", file, exc.lineno) from None
    except ValueError as exc:
        raise error(f"JSON: {exc}", file) from None
    except RecursionError:
        raise error("document nested too deeply", file) from None
    return Document(file=file, data=data, lines=_LazyLines(text, file, error, digest),
                    sha256=digest)


def _parse_yaml(text: str, file: str, error: type[CledecideError], digest: str) -> Document:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise error("empty file", file)
        builder = _Builder(loader, file, error)
        data = builder.build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise error(f"YAML syntax: {exc.problem or exc.context}", file, line) from None
    except yaml.YAMLError as exc:
        raise error(f"YAML syntax: {exc}", file) from None
    except RecursionError:
        raise error("document nested too deeply", file) from None
    finally:
        loader.dispose()
    return Document(file=file, data=data, lines=builder.lines, sha256=digest)


def is_fhir(data: Any) -> bool:
    """Detected from the content, never the file name: a FHIR resource names its
    resourceType; a CDS Hooks prefetch object maps keys to FHIR resources. Our patient
    record has neither."""
    if not isinstance(data, dict):
        return False
    if "resourceType" in data:
        return True
    if "format" in data or "demographics" in data:
        return False
    return bool(data) and any(isinstance(v, dict) and "resourceType" in v
                              for v in data.values())


def input_limit() -> int:
    """The byte guard for patient inputs (MAX_INPUT_BYTES or CLEDECIDE_MAX_INPUT_MB)."""
    given = os.environ.get("CLEDECIDE_MAX_INPUT_MB", "")
    try:
        return int(float(given) * 1_000_000) if given else MAX_INPUT_BYTES
    except ValueError:
        return MAX_INPUT_BYTES


def parse_input(raw: bytes, file: str) -> Document:
    """A patient input: our record (YAML or JSON, at most MAX_FILE_BYTES) or a FHIR
    record in JSON, whose size the FHIR reader bounds by entries and nesting."""
    if len(raw) > MAX_FILE_BYTES and raw.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] != b"{":
        raise InputError(f"file is {len(raw)} bytes; the limit for a YAML record is "
                         f"{MAX_FILE_BYTES} (FHIR input is JSON)", file)
    doc = parse(raw, file)
    if len(raw) > MAX_FILE_BYTES and not is_fhir(doc.data):
        raise InputError(f"file is {len(raw)} bytes; the limit for a patient record is "
                         f"{MAX_FILE_BYTES} (only FHIR input may be larger)", file)
    return doc


def load_input(path: Path | str) -> Document:
    """Read and parse one patient input (see parse_input)."""
    path = Path(path)
    return parse_input(read_bytes(path, InputError, input_limit()), str(path))


def load_file(path: Path | str, error: type[CledecideError] = InputError,
              limit: int = MAX_FILE_BYTES) -> Document:
    """Read and parse one file."""
    path = Path(path)
    return parse(read_bytes(path, error, limit), str(path), error)
