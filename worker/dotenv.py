"""`.env` files read the way docker compose reads them, for tools run outside compose.

One `NAME=value` per line; blank lines and lines starting with `#` are skipped; an
optional `export ` prefix is allowed. Values: unquoted (an inline comment starts at
` #`, surrounding spaces are stripped), 'single-quoted' (literal) or "double-quoted"
(`\\n`, `\\t`, `\\"`, `\\\\` escapes). Variables exported in the environment win over the
file, as with compose. `${NAME}` interpolation is not done: the value is taken as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


class DotenvError(ValueError):
    """A line of the file that is not `NAME=value` (the message names the line)."""


def parse_dotenv(text: str, source: str = ".env") -> dict[str, str]:
    """Every `NAME=value` in `text`, later lines winning; raise DotenvError on a bad line."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, rest = line.partition("=")
        name = name.strip()
        if not sep or not NAME.match(name):
            raise DotenvError(f"{source}:{number}: expected NAME=value")
        values[name] = _value(rest.strip(), f"{source}:{number}")
    return values


def _value(text: str, where: str) -> str:
    if text[:1] == "'":
        end = text.find("'", 1)
        if end < 0:
            raise DotenvError(f"{where}: unterminated single quote")
        return text[1:end]
    if text[:1] == '"':
        out, index = [], 1
        while index < len(text):
            char = text[index]
            if char == "\\" and index + 1 < len(text):
                following = text[index + 1]
                out.append(_ESCAPES.get(following, "\\" + following))
                index += 2
                continue
            if char == '"':
                return "".join(out)
            out.append(char)
            index += 1
        raise DotenvError(f"{where}: unterminated double quote")
    comment = re.search(r"\s#", text)
    return (text[: comment.start()] if comment else text).strip()


def read_dotenv(path: Path) -> dict[str, str]:
    """The variables in the file at `path`; {} when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return parse_dotenv(text, str(path))


def environ_with_dotenv(environ: Mapping[str, str], path: Path) -> dict[str, str]:
    """`environ` over the variables of the .env file at `path` (the environment wins)."""
    return {**read_dotenv(path), **environ}
