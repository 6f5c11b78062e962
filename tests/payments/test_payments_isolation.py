"""The payments package stands alone: importable without the worker, never imported by it,
and (but for ``payments.tickets``) needing nothing outside the standard library."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


# The operator's CLI (agent-net doctor) runs the pricing check, which is standard-library
# only; no serving process loads it (tests/worker/test_imports.py checks what they load).
OPERATOR_TOOLS = {"worker/doctor.py"}


def test_worker_never_imports_payments() -> None:
    importers = {
        str(path.relative_to(REPO))
        for path in sorted((REPO / "worker").rglob("*.py"))
        if any(name.split(".")[0] == "payments" for name in imported_modules(path))
    }
    assert importers - OPERATOR_TOOLS == set()


def test_payments_never_imports_the_worker() -> None:
    for path in sorted((REPO / "payments").rglob("*.py")):
        assert not any(name.split(".")[0] == "worker" for name in imported_modules(path)), path


# --- the standard library alone ------------------------------------------------------------

OPTIONAL_MODULES = {"tickets"}  # needs the payments extra (eth-account, eth-utils)
PROJECT_DEPENDENCIES = ("eth_utils", "eth_account", "eth_keys", "web3", "hypothesis", "flask")


def test_payments_pulls_in_no_third_party_module() -> None:
    """Every payments module but ``tickets`` imports only the standard library."""
    code = (
        "import importlib, json, pkgutil, sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "before = set(sys.modules)\n"
        "import payments\n"
        "names = sorted(m.name for m in pkgutil.iter_modules(payments.__path__))\n"
        f"names = [n for n in names if n not in {sorted(OPTIONAL_MODULES)!r}]\n"
        "for name in names: importlib.import_module('payments.' + name)\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "outside = sorted(new - set(sys.stdlib_module_names) - {'payments'})\n"
        "print(json.dumps({'imported': names, 'outside': outside}))\n"
    )
    # the test environment has eth-utils and the rest installed: an import would succeed
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"amounts", "pricing_check", "check_pricing_cli", "report"} <= set(report["imported"])
    assert report["outside"] == []


def test_tickets_without_eth_account_says_what_to_install() -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "sys.modules['eth_account'] = None  # as if eth-account were not installed\n"
        "import payments.pricing_check  # the rest still imports\n"
        "import payments.tickets\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "ModuleNotFoundError: payments.tickets needs eth-account and eth-utils" in (
        result.stderr
    )
    assert "pip install 'agent-net[payments]'" in result.stderr


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv of the base interpreter, without pip: nothing but the standard library."""
    target = tmp_path_factory.mktemp("bare") / "venv"
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run(
        [base, "-m", "venv", "--without-pip", str(target)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    python = target / "bin" / "python"
    probe = subprocess.run(
        [
            str(python),
            "-I",
            "-c",
            "import importlib.util, json, sys; print(json.dumps([sys.version_info[:2], "
            f"[m for m in {PROJECT_DEPENDENCIES!r} if importlib.util.find_spec(m)]]))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=bare_env(),
    )
    assert probe.returncode == 0, probe.stderr
    version, found = json.loads(probe.stdout)
    assert tuple(version) >= (3, 11)
    assert found == [], f"the bare interpreter is not bare: {found}"
    return python


def bare_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": "", "LANG": "C.UTF-8"}


def test_pricing_check_runs_on_a_bare_python(bare_python: Path, tmp_path: Path) -> None:
    """README's `python3 scripts/check_pricing.py` on a fresh machine: no venv, no packages."""
    result = subprocess.run(
        [str(bare_python), "-I", str(REPO / "scripts" / "check_pricing.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=bare_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert "| ticketEV" in out and "29000000000000 wei (29,000 gwei)" in out
    assert "above gas price 833333333 wei" in out.replace("\n", " ").replace("|", "")
    assert "\nOK: the gateway will accept the orchestrator's price and tickets\n" in out
    json_result = subprocess.run(
        [str(bare_python), "-I", str(REPO / "scripts" / "check_pricing.py"), "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=bare_env(),
    )
    assert json_result.returncode == 0, json_result.stderr
    assert json.loads(json_result.stdout)["derived"]["face_value_wei"] == str(10**15)
