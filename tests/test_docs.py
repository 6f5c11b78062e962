"""The README and docs/ hold together: links resolve, the README stays short, and
docs/operator.md's configuration table lists every setting with its real default."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from worker.config import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
OPERATOR = ROOT / "docs" / "operator.md"
README_LIMIT_BYTES = 8 * 1024
UNSET = "*(unset)*"
# Defaults that depend on the host, written as a pattern in the table.
DERIVED_DEFAULTS = {"CAPABILITY_URL": "`http://<hostname>:<WORKER_PORT>`"}

FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def documents() -> list[Path]:
    """README.md and every Markdown file in docs/."""
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where links are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub makes for the headings of `path` (repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(path: Path) -> list[str]:
    """Link targets in `path` that point inside the repository."""
    targets = LINK.findall(prose(path.read_text(encoding="utf-8")))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.IGNORECASE)]


def broken_links(path: Path) -> list[str]:
    """Every relative link of `path` whose file, or heading anchor, does not exist."""
    broken = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target} (no heading #{anchor} in {linked.name})")
    return broken


@pytest.mark.parametrize("path", documents(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_link_check_catches_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# A heading\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok](there.md#a-heading) [web](https://example.com)\n"
        "`[code](nowhere.md)`\n[gone](missing.md) [bad](there.md#nope) [self](#top)\n",
        encoding="utf-8",
    )
    assert broken_links(page) == [
        "missing.md (no such file)",
        "there.md#nope (no heading #nope in there.md)",
        "#top (no heading #top in page.md)",
    ]


def test_readme_links_the_guides() -> None:
    links = {link.partition("#")[0] for link in relative_links(README)}
    for guide in ("docs/operator.md", "docs/registration.md", "docs/pricing.md"):
        assert guide in links
    assert {"docs/metrics.md", "bench/README.md"} <= links


def test_readme_stays_short() -> None:
    size = len(README.read_bytes())
    assert size < README_LIMIT_BYTES, f"README.md is {size} bytes; move detail into docs/"


def configuration_table() -> dict[str, str]:
    """docs/operator.md's configuration rows: variable name -> default cell."""
    text = OPERATOR.read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| (.+?) \|", section, re.MULTILINE)
    return dict(rows)


def documented_default(alias: str) -> str:
    """The default cell the table must show for the setting named `alias`."""
    field = next(f for f in Settings.model_fields.values() if f.alias == alias)
    value = field.get_default(call_default_factory=True)
    if alias in DERIVED_DEFAULTS:
        return DERIVED_DEFAULTS[alias]
    if value is None or value in ([], {}):
        return UNSET
    if isinstance(value, list):
        value = ",".join(str(item) for item in value)
    elif isinstance(value, bool):
        value = str(value).lower()
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def test_operator_guide_lists_every_setting_once() -> None:
    aliases = [field.alias for field in Settings.model_fields.values()]
    table = configuration_table()
    assert sorted(table) == sorted(aliases)
    text = OPERATOR.read_text(encoding="utf-8")
    for alias in aliases:
        assert f"`{alias}`" in text


def test_operator_guide_shows_each_real_default() -> None:
    table = configuration_table()
    wrong = {
        alias: (cell, documented_default(alias))
        for alias, cell in table.items()
        if cell != documented_default(alias)
    }
    assert wrong == {}


def test_the_derived_capability_url_is_as_documented() -> None:
    settings = Settings(WORKER_PORT=1234)
    assert settings.advertised_url == f"http://{socket.gethostname()}:1234"
