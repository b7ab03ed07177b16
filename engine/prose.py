"""Numbers in prose: rule texts name thresholds by placeholder, so a changed threshold
changes every sentence that states it.

A text of a rule file or of drugs.yaml may write `{antimalarial_trial_months}` or
`{hydroxychloroquine_max_mg_per_kg}` (the names conditions use: every threshold of
ruleset.yaml, and each drug's dose limit as `<drug>_max_mg_per_kg`), optionally with a
Python format (`{hydroxychloroquine_max_mg_per_kg:.1f}` reads 5.0). They are filled in
when the rules are loaded, so every output, `rules show` and the rulebook read the
number. Placeholders the advice fills per patient (`{stop_date[acitretin]}`,
`{current}`...) are left for later; any other name is an error with FILE:LINE: field.
`{=8 weeks}` is a number written on purpose as a source states it: shown as `8 weeks`,
never reported below.

The check also looks for the opposite: a number with a threshold's unit ("5 mg/kg",
"8 weeks") that equals exactly one threshold the same rule names (for a drug entry: the
same block of it), or a dose limit: a warning, because that sentence would not follow
a change of the threshold. A number equal to several such thresholds is not reported:
which one it means is for its author to say.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator

Path_ = tuple[str | int, ...]

# What the advice fills in per patient (engine/texts.py and the step's summary in
# engine/decide.py); tests/test_prose.py keeps this list equal to theirs.
ADVICE_PLACEHOLDERS = frozenset({
    "stop_date", "conception_from", "recorded_dose", "trial_until", "current_among",
    "conception_after", "planning_stop_date", "window_end", "conception_plan",
    "start_from", "retinal_due", "retinal_annual_from", "retinal_when", "in_trial_until",
    "crcl_formula", "vte_factors", "vte_modifiable", "condom_use_words",
    # a step's summary
    "trigger", "drug", "dose", "current", "current_teratogens",
})

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{=([^{}]*)\}"
                          r"|\{([a-z][a-z0-9_]*)(\[[^\]{}]*\])?(?::([^{}]*))?\}")
# Fields that are not prose: conditions, review records, identifiers.
NOT_PROSE = frozenset({"when", "review", "id", "evidence", "status", "stage"})
DOSE_LIMIT_SUFFIX = "_max_mg_per_kg"


@dataclass(frozen=True)
class Problem:
    """A placeholder that cannot be filled, or a number that repeats a threshold."""

    severity: str     # error | warning
    code: str         # placeholder | number-in-prose
    message: str
    path: Path_


def number(value: float, spec: str | None = None) -> str:
    """A threshold as prose states it: 3, 2.3, 0.5 (or with the placeholder's format)."""
    if spec:
        return format(value, spec)
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def fill(text: str, thresholds: dict[str, float]) -> tuple[str, list[str]]:
    """The text with every threshold placeholder filled in, and the placeholders that
    are neither a threshold nor a value the advice fills in (or have a bad format)."""
    if "{" not in text:
        return text, []
    bad: list[str] = []

    def sub(m: re.Match[str]) -> str:
        literal, name, index, spec = m.groups()
        if literal is not None:
            return literal  # {=8 weeks}: a number as a source states it, on purpose
        if name is None:
            return m.group(0)
        if index is None and name in thresholds:
            try:
                return number(thresholds[name], spec)
            except ValueError:
                bad.append(m.group(0))
                return m.group(0)
        if name not in ADVICE_PLACEHOLDERS:
            bad.append(m.group(0))
        return m.group(0)

    return _PLACEHOLDER.sub(sub, text), bad


def strings(data: Any, path: Path_ = ()) -> Iterator[tuple[Path_, str]]:
    """Every prose string of a rule or drug entry, with its path (not conditions,
    review records or ids)."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key not in NOT_PROSE:
                yield from strings(value, path + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from strings(value, path + (i,))
    elif isinstance(data, str):
        yield path, data


def filled(data: Any, thresholds: dict[str, float], path: Path_ = ()
           ) -> tuple[Any, list[Problem]]:
    """A copy of a rule's (or drug entry's) data with its placeholders filled, and the
    unknown ones (the data itself when nothing changes)."""
    problems: list[Problem] = []

    def walk(value: Any, where: Path_) -> Any:
        if isinstance(value, dict):
            out = {k: (v if k in NOT_PROSE else walk(v, where + (k,))) for k, v in value.items()}
            return out if any(out[k] is not value[k] for k in value) else value
        if isinstance(value, list):
            items = [walk(v, where + (i,)) for i, v in enumerate(value)]
            return items if any(a is not b for a, b in zip(items, value)) else value
        if isinstance(value, str) and "{" in value:
            text, bad = fill(value, thresholds)
            problems.extend(Problem("error", "placeholder", f"unknown placeholder {b}: not a "
                                    "threshold of ruleset.yaml, a drug's dose limit "
                                    "(<drug>_max_mg_per_kg) or a value the advice fills in",
                                    where) for b in bad)
            return text if text != value else value
        return value

    return walk(data, path), problems


# ------------------------------------------------------------ numbers in prose

# A number followed by a unit as prose writes it; the unit's threshold spelling.
_UNITS = {"mg/kg": "mg/kg", "month": "months", "months": "months", "week": "weeks",
          "weeks": "weeks", "day": "days", "days": "days", "year": "years",
          "years": "years", "mL/min/1.73 m2": "mL/min/1.73 m2", "mL/min": "mL/min",
          "mg/day": "mg/day", "x 10^9/L": "10^9/L", "10^9/L": "10^9/L", "U/L": "U/L",
          "%": "%", "CLASI-A points": "CLASI-A points"}
_NUMBER = re.compile(r"(?<![\w.{:/^])(\d+(?:\.\d+)?)\s*("
                     + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
                     + r")(?![\w/])")
_WORD = re.compile(r"[a-z][a-z0-9_]*")
_LITERAL = re.compile(r"\{=[^{}]*\}")


def named_thresholds(data: Any, thresholds: dict[str, float]) -> set[str]:
    """The thresholds a rule or drug entry names anywhere (its condition, schedules,
    placeholders, course fields)."""
    out: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k != "review":
                    walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str):
            out.update(w for w in _WORD.findall(value) if w in thresholds)
    walk(data)
    return out


def _block(data: Any, rel: Path_) -> Any:
    """The mapping that holds the field at rel (a drug entry's sub-block)."""
    for key in rel[:-1]:
        data = data[key]
    return data


def repeated_numbers(data: Any, thresholds: dict[str, float], units: dict[str, str],
                     also: frozenset[str] | set[str] = frozenset(), path: Path_ = (),
                     by_block: bool = False) -> list[Problem]:
    """Numbers in a rule's (or drug entry's) prose that equal, in the same unit, a
    threshold it names or any dose limit: they would not follow a change. by_block: the
    thresholds named in the same block only (a drug entry names many, for many things)."""
    out: list[Problem] = []
    whole: set[str] | None = None
    for where, text in strings(data, path):
        if not any(c.isdigit() for c in text):
            continue
        for m in _NUMBER.finditer(_LITERAL.sub("", text)):
            same_value = _by_value(thresholds, units).get((float(m.group(1)),
                                                           _UNITS[m.group(2)]))
            if not same_value:
                continue
            if by_block:
                named = named_thresholds(_block(data, where[len(path):]), thresholds)
            else:
                whole = whole if whole is not None else named_thresholds(data, thresholds)
                named = whole
            same = [n for n in same_value if n in named or n in also
                    or n.endswith(DOSE_LIMIT_SUFFIX)]
            if len(same) == 1:  # several: which one is meant is for the reader to say
                out.append(Problem("warning", "number-in-prose",
                                   f"'{m.group(0)}' repeats threshold {same[0]}: write "
                                   f"{{{same[0]}}} so that the text follows a change, or "
                                   f"{{={m.group(0)}}} for a source's own number",
                                   where))
    return out


_INDEX: dict[int, tuple[Any, dict[tuple[float, str], list[str]]]] = {}


def _by_value(thresholds: dict[str, float], units: dict[str, str]
              ) -> dict[tuple[float, str], list[str]]:
    """(value, unit) -> the thresholds with it, built once per thresholds mapping."""
    cached = _INDEX.get(id(thresholds))
    if cached is not None and cached[0] is thresholds:
        return cached[1]
    index: dict[tuple[float, str], list[str]] = {}
    for name, value in sorted(thresholds.items()):
        index.setdefault((float(value), units.get(name, "")), []).append(name)
    _INDEX.clear()
    _INDEX[id(thresholds)] = (thresholds, index)
    return index
