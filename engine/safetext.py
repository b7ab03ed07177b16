"""Text from input shown on a terminal: control and bidirectional-override characters
are escaped visibly, so that a record cannot retitle a terminal window, move the
cursor, or reverse the reading order of a warning."""
from __future__ import annotations

import re

# C0 and C1 controls (but not the newline and tab the renderer itself writes), DEL, and
# the bidirectional overrides, embeddings and isolates.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
                     "\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def visible(text: str, one_line: bool = False) -> str:
    """`text` with unsafe characters escaped (and newlines too when `one_line`)."""
    out = _UNSAFE.sub(_escape, text)
    if one_line:
        out = out.replace("\n", "\\n").replace("\t", "\\t")
    return out

