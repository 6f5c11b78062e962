"""Does a command's real output agree with what a document shows?

The shown text becomes a pattern: `...` or `…` stands for any text, a run of whitespace
for any whitespace (columns and line breaks may differ), and the values that differ from
run to run match by their shape: loopback ports and `worker port N` (each port the
document shows stands for one real port throughout, and the default ports for the ones
the test uses), Unix times,
durations (`in 0.9 s`), temporary paths and token counts. Everything else must be there
as shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

ELLIPSIS = re.compile(r"\.\.\.|…")
# (what the document shows, the pattern a real value must match); ports are handled apart.
VOLATILE = (
    (re.compile(r"\d{9,}(?:\.\d+)?"), r"\d+(?:\.\d+)?"),  # Unix times, as seconds
    (re.compile(r"(?<=\bin )\d+\.\d+(?= s\b)"), r"\d+(?:\.\d+)?"),  # how long a run took
    (re.compile(r"/tmp/[^\s'\"]+"), r"/[^\s'\"]+"),  # a temporary directory
    (
        re.compile(r'(?:(?<="prompt_tokens":)|(?<="completion_tokens":)|(?<="total_tokens":))\d+'),
        r"\d+",
    ),  # a model's token counts
)
PORT = re.compile(r"(?:(?<=127\.0\.0\.1:)|(?<=localhost:)|(?<=worker port ))\d{2,5}\b")


def pattern(shown: str, ports: Mapping[str, int]) -> re.Pattern[str]:
    """The pattern real output must match in full; `ports` maps a port the document
    writes (9876, 8935, 11434) to the one the test uses."""
    parts: list[str] = []
    bound: dict[str, str] = {}
    for piece_index, piece in enumerate(ELLIPSIS.split(shown.strip())):
        if piece_index:
            parts.append(".*?")
        parts.append(_piece(piece, ports, bound))
    return re.compile("".join(parts), re.DOTALL)


def _piece(text: str, ports: Mapping[str, int], bound: dict[str, str]) -> str:
    """`text` (no ellipsis in it) as a pattern: literal but for whitespace and volatiles."""
    spans: list[tuple[int, int, str]] = []
    for match in PORT.finditer(text):
        port = match.group()
        if port in ports:
            regex = str(ports[port])
        elif port in bound:
            regex = f"(?P={bound[port]})"
        else:
            bound[port] = f"port{len(bound)}"
            regex = rf"(?P<{bound[port]}>\d+)"
        spans.append((match.start(), match.end(), regex))
    for volatile, regex in VOLATILE:
        spans.extend((m.start(), m.end(), regex) for m in volatile.finditer(text))
    spans.sort()
    out, at = [], 0
    for start, end, regex in spans:
        if start < at:
            continue  # overlaps one already taken
        out.append(_literal(text[at:start]))
        out.append(regex)
        at = end
    out.append(_literal(text[at:]))
    return "".join(out)


def _literal(text: str) -> str:
    return r"\s*".join(re.escape(word) for word in re.split(r"\s+", text))


def agrees(shown: str, actual: str, ports: Mapping[str, int]) -> bool:
    """Whether `actual` is what `shown` shows (in full, whitespace aside at both ends)."""
    return pattern(shown, ports).fullmatch(actual.strip()) is not None


def appears(shown: str, actual: str, ports: Mapping[str, int]) -> bool:
    """Whether what `shown` shows appears somewhere in `actual` (a log line, say)."""
    return pattern(shown, ports).search(actual) is not None
