"""The payments package stands alone: importable without the worker, never imported by it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_payments_imports_without_the_worker_or_its_dependencies() -> None:
    code = (
        "import sys\n"
        "sys.modules['worker'] = None  # any import of the worker now fails\n"
        "import payments, payments.pricing_check, payments.tickets, payments.check_pricing_cli\n"
        "loaded = [m for m in ('worker', 'flask', 'ollama', 'pynvml') if sys.modules.get(m)]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_worker_never_imports_payments() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for path in sorted((REPO / "worker").rglob("*.py"))
        if any(name.split(".")[0] == "payments" for name in imported_modules(path))
    ]
    assert offenders == []


def test_payments_never_imports_the_worker() -> None:
    for path in sorted((REPO / "payments").rglob("*.py")):
        assert not any(name.split(".")[0] == "worker" for name in imported_modules(path)), path
