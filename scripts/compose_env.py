"""Read a docker compose `.env` file as `docker compose` does; Python standard library only.

    python3 scripts/compose_env.py FILE NAME...

prints, for every NAME set in the environment or in FILE, the shell assignments
`cfg_NAME=VALUE` and `cfg_from_NAME=SOURCE` (`environment` or FILE), quoted for `eval`.
As in compose, a variable set in the environment (even to "") wins over FILE, and a
missing FILE is an empty one. Exit 1, naming the line, on a file compose would refuse too.

The syntax is compose's (compose-go dotenv): `KEY=VALUE` or `KEY: VALUE`, an optional
`export ` before the key, `#` comment lines, ` #` starting a comment after an unquoted
value, 'single quotes' kept literally, "double quotes" with \\n, \\r and backslash escapes,
quoted values across lines, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
`${VAR:+alt}`, `${VAR+alt}`, `${VAR:?message}`, `${VAR?message}` and `$$` in unquoted and
double-quoted values (the environment first, then earlier lines), and a bare `KEY` taking
the environment's value.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

KEY = re.compile(r"[A-Za-z0-9_.]+")
SUBSTITUTION = re.compile(
    r"\$(?:(?P<dollar>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-+?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class EnvFileError(ValueError):
    """A `.env` file compose would refuse, with the line number."""


Fail = Callable[[str], EnvFileError]


def parse(text: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables `text` (a .env file's content) defines, environment values winning."""
    values: dict[str, str] = {}
    pos, line = 0, 1

    def fail(message: str) -> EnvFileError:
        return EnvFileError(f"line {line}: {message}")

    def skip_blanks(i: int) -> int:
        while i < len(text) and text[i] in " \t":
            i += 1
        return i

    def line_end(i: int) -> int:
        end = text.find("\n", i)
        return len(text) if end < 0 else end

    while pos < len(text):
        end = line_end(pos)
        statement = text[pos:end].strip()
        if not statement or statement.startswith("#"):
            pos, line = end + 1, line + 1
            continue
        i = skip_blanks(pos)
        if re.match(r"export[ \t]", text[i:end]):
            i = skip_blanks(i + len("export"))
        key_match = KEY.match(text, i, end)
        if key_match is None:
            raise fail(f"expected a variable name, got {statement[:20]!r}")
        key = key_match.group()
        i = skip_blanks(key_match.end())
        if i >= end or text[i] == "\r":  # a bare KEY: the environment's value, if any
            if key in environ:
                values[key] = environ[key]
            pos, line = end + 1, line + 1
            continue
        if text[i] not in "=:":
            raise fail(f"unexpected character {text[i]!r} after {key!r}")
        i = skip_blanks(i + 1)
        if i < len(text) and text[i] in "'\"":
            quote, close = text[i], i + 1
            while close < len(text) and (text[close] != quote or text[close - 1] == "\\"):
                close += 1
            if close >= len(text):
                raise fail(f"unterminated quoted value for {key}")
            raw = text[i + 1 : close]
            value = raw if quote == "'" else _substitute(_unescape(raw), environ, values, fail)
            line += raw.count("\n")
            end = line_end(close)
        else:
            raw = text[i:end].split(" #", 1)[0].rstrip()
            value = _substitute(raw, environ, values, fail)
        values[key] = environ.get(key, value)
        pos, line = end + 1, line + 1
    return values


def _unescape(raw: str) -> str:
    """Double-quoted escapes: \\n and \\r, and a backslash before anything but `$` dropped."""
    escapes = {"n": "\n", "r": "\r", "$": "\\$"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m[1], m[1]), raw, flags=re.DOTALL)


def _substitute(raw: str, environ: Mapping[str, str], values: Mapping[str, str], fail: Fail) -> str:
    """`raw` with compose's `$` substitutions made (the environment first, then `values`)."""

    def replace(match: re.Match[str]) -> str:
        if match["dollar"]:
            return "$"
        name = match["braced"] or match["bare"]
        found = environ.get(name, values.get(name))
        op, arg = match["op"] or "", match["arg"] or ""
        present = found is not None and (found != "" or not op.startswith(":"))
        if op.endswith("-"):
            return found if present and found is not None else sub(arg)
        if op.endswith("+"):
            return sub(arg) if present else ""
        if op.endswith("?") and not present:
            raise fail(f"{name}: {arg or 'required variable is missing a value'}")
        return found or ""

    def sub(part: str) -> str:
        return SUBSTITUTION.sub(replace, part)

    return sub(raw)


def settings(
    path: Path, names: list[str], environ: Mapping[str, str]
) -> list[tuple[str, str, str]]:
    """(name, source, value) for each of `names` set in `environ` or in the file `path`."""
    from_file = parse(path.read_text(encoding="utf-8"), environ) if path.is_file() else {}
    found = []
    for name in names:
        if name in environ:
            found.append((name, "environment", environ[name]))
        elif name in from_file:
            found.append((name, str(path), from_file[name]))
    return found


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) for name in argv[1:]):
        print(
            "usage: compose_env.py FILE NAME... (each NAME a shell variable name)", file=sys.stderr
        )
        return 2
    path = Path(argv[0])
    try:
        found = settings(path, argv[1:], os.environ)
    except (EnvFileError, OSError, UnicodeDecodeError) as error:
        print(f"cannot read {path}: {error}", file=sys.stderr)
        return 1
    for name, source, value in found:
        print(f"cfg_{name}={shlex.quote(value)}\ncfg_from_{name}={shlex.quote(source)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
