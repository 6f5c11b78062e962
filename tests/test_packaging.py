"""Packaging: pyproject's licence is the LICENSE file, and an install warns of nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

MIT_BODY = """\
Permission is hereby granted, free of charge, to any person obtaining a copy of this
software and associated documentation files (the "Software"), to deal in the Software
without restriction, including without limitation the rights to use, copy, modify, merge,
publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons
to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR
PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE
FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
DEALINGS IN THE SOFTWARE.
"""


def words(text: str) -> list[str]:
    return text.split()


def test_pyproject_license_and_the_license_file_agree() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"  # an SPDX expression, not the deprecated table
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    lines = text.splitlines()
    assert lines[0] == "MIT License"
    assert lines[2] == "Copyright (c) 2026 Agent-Net contributors"
    assert words("\n".join(lines[3:])) == words(MIT_BODY)
    requires = PYPROJECT["build-system"]["requires"]
    assert requires == ["setuptools>=77"], "SPDX license strings need setuptools 77"


def test_the_worker_image_gets_the_license_file() -> None:
    """pyproject names LICENSE, so `pip install .` in the image fails without it."""
    assert "!LICENSE" in (ROOT / ".dockerignore").read_text().splitlines()
    copies = [
        line.split()[1:-1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from" not in line
    ]
    assert any("LICENSE" in sources and "pyproject.toml" in sources for sources in copies)


def test_no_package_data_is_declared_for_absent_files() -> None:
    declared = PYPROJECT["tool"]["setuptools"].get("package-data", {})
    for package, patterns in declared.items():
        for pattern in patterns:
            assert list((ROOT / package).glob(pattern)), f"{package}: {pattern} matches nothing"


@pytest.mark.timeout(180)
def test_an_editable_install_prints_no_warning(tmp_path: Path) -> None:
    """`pip install -e .` of a copy, into a new bare virtualenv (pip --python): the build
    backend's warnings, which pip shows as BuildBackendWarning, must be none."""
    try:
        from pip._vendor.pyproject_hooks import BuildBackendWarning  # noqa: F401
    except ImportError:
        pytest.fail("this pip does not pass on build backend warnings: upgrade pip (>= 26)")
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, copy / name)
    for package in ("worker", "payments"):
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("__py*"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
    options = ["--no-deps", "--no-cache-dir", "--disable-pip-version-check"]
    result = subprocess.run(
        [*pip, *options, "-e", str(copy)],
        capture_output=True,
        text=True,
        timeout=170,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Successfully installed agent-net-0.1.0" in output
    assert "BuildBackendWarning" not in output and "Warning:" not in output, output
