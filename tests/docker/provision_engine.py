"""Provision a real Docker engine and a ``python:3.11-slim`` base image for the live tests.

Idempotent and reusable (the session fixture in ``conftest.py`` calls it; it also runs as
a script: ``python tests/docker/provision_engine.py [--stop]``):

1. If an engine already answers (``docker info``), use it and leave it alone.
2. Else, as root on a machine with apt: install ``docker.io`` + ``debootstrap`` when
   missing, start ``dockerd`` in the background and remember to stop it afterwards.
3. Else fail with :class:`EngineUnavailable`, whose message names the opt-out
   ``scripts/test.sh --no-docker``.

The base image is built only when ``python:3.11-slim`` is absent and cannot be pulled:
a Debian bookworm root filesystem from ``debootstrap`` (Python 3.11), cached as a tarball
under ``$AGENTNET_DOCKER_CACHE`` (default ``/tmp/agentnet-docker-cache``) so reruns only
pay for ``docker import`` (a few seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

OPT_OUT = "scripts/test.sh --no-docker"
BASE_IMAGE = "python:3.11-slim"
CACHE_DIR = Path(os.environ.get("AGENTNET_DOCKER_CACHE", "/tmp/agentnet-docker-cache"))
ROOTFS_TAR = CACHE_DIR / "python-3.11-slim-standin-rootfs.tar"
DEBIAN_MIRROR = os.environ.get("AGENTNET_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SOCKET = "/var/run/docker.sock"
STANDIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


LEASES = CACHE_DIR / "leases"


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Serialise provisioning between concurrent test sessions on this machine."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (CACHE_DIR / "provision.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _take_lease() -> None:
    LEASES.mkdir(parents=True, exist_ok=True)
    (LEASES / str(os.getpid())).touch()


def _other_live_leases() -> list[int]:
    """Pids of other running sessions that use the engine."""
    pids = []
    for lease in LEASES.glob("*") if LEASES.is_dir() else []:
        if not lease.name.isdigit() or int(lease.name) == os.getpid():
            continue
        try:
            os.kill(int(lease.name), 0)
            pids.append(int(lease.name))
        except ProcessLookupError:
            lease.unlink(missing_ok=True)
        except PermissionError:
            pids.append(int(lease.name))
    return pids


class EngineUnavailable(RuntimeError):
    """No Docker engine can be used or provisioned on this machine."""


@dataclass
class Engine:
    """A Docker engine the tests may use."""

    docker: str
    env: dict[str, str]
    started_pid: int | None = None
    log_path: Path | None = None

    def run(
        self, *args: str, check: bool = True, timeout: float = 600, **kw: object
    ) -> subprocess.CompletedProcess[str]:
        """Run ``docker ARGS`` against this engine, capturing text output."""
        return subprocess.run(
            [self.docker, *args],
            env=self.env,
            check=check,
            capture_output=True,
            text=True,
            timeout=timeout,
            **kw,  # type: ignore[arg-type]
        )


def _log(msg: str) -> None:
    print(f"[provision_engine] {msg}", file=sys.stderr, flush=True)


def _docker_cli() -> str | None:
    for candidate in (shutil.which("docker"), "/usr/bin/docker"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _engine_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DOCKER_HOST", f"unix://{SOCKET}")
    return env


def _answers(docker: str, env: dict[str, str]) -> bool:
    try:
        res = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0 and bool(res.stdout.strip())


def _can_provision() -> str | None:
    """Return None when we may install/start an engine, else the reason why not."""
    if os.geteuid() != 0:
        return "not running as root"
    if not shutil.which("apt-get") and not shutil.which("dockerd"):
        return "neither apt-get nor dockerd is available"
    return None


def _apt_install(*packages: str) -> None:
    _log(f"apt-get install {' '.join(packages)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update"], env=env, check=True, capture_output=True, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", *packages],
        env=env,
        check=True,
        capture_output=True,
        timeout=900,
    )


def _start_dockerd(docker: str, env: dict[str, str]) -> tuple[int, Path]:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    log_path = CACHE_DIR / "dockerd.log"
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    _log(f"starting {dockerd} (log: {log_path})")
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [dockerd, "--host", f"unix://{SOCKET}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise EngineUnavailable(f"dockerd exited with {proc.returncode}:\n{tail}")
        if _answers(docker, env):
            return proc.pid, log_path
        time.sleep(0.5)
    os.kill(proc.pid, signal.SIGTERM)
    raise EngineUnavailable("dockerd did not answer within 60 s; see " + str(log_path))


def ensure_engine() -> Engine:
    """Return a usable engine, installing and starting one when possible."""
    with _locked():
        engine = _ensure_engine()
        _take_lease()
        return engine


def _ensure_engine() -> Engine:
    env = _engine_env()
    docker = _docker_cli()
    if docker and _answers(docker, env):
        _log(f"using the engine that already answers at {env['DOCKER_HOST']}")
        return Engine(docker=docker, env=env)
    reason = _can_provision()
    if reason:
        raise EngineUnavailable(
            f"No Docker engine answers at {env['DOCKER_HOST']} and none can be provisioned "
            f"here ({reason}). The live container tests need one; to opt out explicitly, run "
            f"`{OPT_OUT}`."
        )
    if not shutil.which("dockerd") or not (docker := _docker_cli()):
        _apt_install("docker.io", "debootstrap")
        docker = _docker_cli()
    if docker is None:
        raise EngineUnavailable(f"docker.io installed but no docker CLI found; opt out: {OPT_OUT}")
    pid, log_path = _start_dockerd(docker, env)
    return Engine(docker=docker, env=env, started_pid=pid, log_path=log_path)


def stop_engine(engine: Engine) -> None:
    """Stop dockerd if (and only if) :func:`ensure_engine` started it and no other
    session on this machine still uses it (then it is left running for them)."""
    with _locked():
        (LEASES / str(os.getpid())).unlink(missing_ok=True)
        if engine.started_pid is None:
            return
        others = _other_live_leases()
        if others:
            _log(f"leaving dockerd (pid {engine.started_pid}) running for sessions {others}")
            return
        _stop_pid(engine.started_pid)


def _stop_pid(pid: int) -> None:
    _log(f"stopping the dockerd this run started (pid {pid})")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:  # reap it when it is our child
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            pass
        time.sleep(0.2)


def _build_rootfs_tar() -> None:
    """debootstrap a bookworm root filesystem shaped like ``python:3.11-slim``; cache it."""
    if not shutil.which("debootstrap"):
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise EngineUnavailable(
                f"{BASE_IMAGE} is absent, cannot be pulled, and debootstrap cannot be "
                f"installed here; opt out: {OPT_OUT}"
            )
        _apt_install("debootstrap")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as tmp:
        root = Path(tmp) / "rootfs"
        _log(f"debootstrap bookworm into {root} (about 45 s)")
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates",
                "bookworm",
                str(root),
                DEBIAN_MIRROR,
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
        # Behave like the official image: pip may install system-wide, and pip inside a
        # build trusts the same authorities as the host.
        (root / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
        host_ca = Path("/etc/ssl/certs/ca-certificates.crt")
        if host_ca.exists():
            shutil.copyfile(host_ca, root / "etc/ssl/certs/ca-certificates.crt")
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        partial = ROOTFS_TAR.with_suffix(".tar.partial")
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
        partial.replace(ROOTFS_TAR)
    _log(f"cached rootfs at {ROOTFS_TAR}")


def ensure_base_image(engine: Engine) -> str:
    """Make ``python:3.11-slim`` available; return how ('present', 'pulled', 'stand-in')."""
    with _locked():
        return _ensure_base_image(engine)


def _ensure_base_image(engine: Engine) -> str:
    if engine.run("image", "inspect", BASE_IMAGE, check=False).returncode == 0:
        return "present"
    try:
        if engine.run("pull", BASE_IMAGE, check=False, timeout=60).returncode == 0:
            return "pulled"
    except subprocess.TimeoutExpired:
        pass
    if not ROOTFS_TAR.exists():
        _build_rootfs_tar()
    _log(f"docker import {ROOTFS_TAR} as {BASE_IMAGE} (stand-in)")
    with ROOTFS_TAR.open("rb") as tar:
        subprocess.run(
            [
                engine.docker,
                "import",
                "--change",
                f"ENV PATH={STANDIN_PATH}",
                "--change",
                "ENV LANG=C.UTF-8",
                "--change",
                'CMD ["python3"]',
                "--message",
                "agent-net test stand-in for python:3.11-slim (Debian bookworm, Python 3.11)",
                "-",
                BASE_IMAGE,
            ],
            stdin=tar,
            env=engine.env,
            check=True,
            capture_output=True,
            timeout=600,
        )
    return "stand-in"


def main() -> int:
    """CLI: provision (and print how), or ``--stop`` a dockerd found via its pid file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stop", action="store_true", help="stop the dockerd started earlier")
    args = parser.parse_args()
    pid_file = CACHE_DIR / "dockerd.pid"
    if args.stop:
        if pid_file.exists():
            pid = int(pid_file.read_text())
            stop_engine(Engine(docker="docker", env={}, started_pid=pid))
            pid_file.unlink()
        return 0
    try:
        engine = ensure_engine()
        how = ensure_base_image(engine)
    except EngineUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    if engine.started_pid is not None:
        pid_file.write_text(str(engine.started_pid))
    print(f"engine: {engine.env['DOCKER_HOST']} started_pid={engine.started_pid} base={how}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
