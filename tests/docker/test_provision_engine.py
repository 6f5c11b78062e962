"""The engine provisioning never skips: without an engine it fails naming the opt-out."""

from __future__ import annotations

import os
from pathlib import Path

import provision_engine as pe
import pytest


def test_no_engine_and_no_root_fails_naming_the_opt_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pe, "_answers", lambda docker, env: False)
    monkeypatch.setattr(pe.os, "geteuid", lambda: 1000)
    with pytest.raises(pe.EngineUnavailable) as info:
        pe.ensure_engine()
    assert "scripts/test.sh --no-docker" in str(info.value)
    assert "not running as root" in str(info.value)


def test_no_engine_no_apt_no_dockerd_fails_naming_the_opt_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pe, "_answers", lambda docker, env: False)
    monkeypatch.setattr(pe.os, "geteuid", lambda: 0)
    monkeypatch.setattr(pe.shutil, "which", lambda name: None)
    with pytest.raises(pe.EngineUnavailable) as info:
        pe.ensure_engine()
    assert "scripts/test.sh --no-docker" in str(info.value)


def test_an_answering_engine_is_used_and_never_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pe, "_docker_cli", lambda: "/usr/bin/docker")
    monkeypatch.setattr(pe, "_answers", lambda docker, env: True)
    monkeypatch.setattr(pe, "_start_dockerd", lambda *a: pytest.fail("must not start dockerd"))
    engine = pe.ensure_engine()
    assert engine.started_pid is None
    monkeypatch.setattr(pe.os, "kill", lambda *a: pytest.fail("must not stop it"))
    pe.stop_engine(engine)


def test_a_started_engine_is_left_running_while_another_session_uses_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(pe, "CACHE_DIR", tmp_path)
    monkeypatch.setattr(pe, "LEASES", tmp_path / "leases")
    stopped: list[int] = []
    monkeypatch.setattr(pe, "_stop_pid", stopped.append)
    (tmp_path / "leases").mkdir()
    (tmp_path / "leases" / str(os.getppid())).touch()  # a live session: our parent
    (tmp_path / "leases" / "999999999").touch()  # a dead one: cleaned up
    engine = pe.Engine(docker="docker", env={}, started_pid=4242)
    pe.stop_engine(engine)
    assert stopped == []
    assert not (tmp_path / "leases" / "999999999").exists()
    (tmp_path / "leases" / str(os.getppid())).unlink()
    pe.stop_engine(engine)
    assert stopped == [4242]
