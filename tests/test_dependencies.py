"""Every third-party package the shipped code imports is declared in pyproject.toml."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"worker", "payments"}
# Imported only by payments.tickets, the one optional module (the `payments` extra).
OPTIONAL = {ROOT / "payments" / "tickets.py": "payments"}


def imported_top_levels(path: Path) -> set[str]:
    """Top-level module names imported anywhere in `path` (absolute imports only)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - FIRST_PARTY - set(sys.stdlib_module_names) - {"__future__"}


def declared(requirements: list[str]) -> set[str]:
    """Normalised distribution names of PEP 508 requirement strings."""
    return {_normalise(re.split(r"[<>=!~\[; ]", item, maxsplit=1)[0]) for item in requirements}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_third_party_package_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = declared(project["dependencies"])
    extras = {name: declared(items) for name, items in project["optional-dependencies"].items()}
    distributions = importlib.metadata.packages_distributions()
    missing = []
    checked = 0
    for path in sorted([*ROOT.glob("worker/**/*.py"), *ROOT.glob("payments/**/*.py")]):
        allowed = runtime | extras.get(OPTIONAL.get(path, ""), set())
        for module in sorted(imported_top_levels(path)):
            checked += 1
            owners = {_normalise(name) for name in distributions.get(module, [module])}
            if not owners & allowed:
                missing.append(f"{path.relative_to(ROOT)} imports {module} ({', '.join(owners)})")
    assert checked > 5  # the scan saw the worker's real imports
    assert missing == []
