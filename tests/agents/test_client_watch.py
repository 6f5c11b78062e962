"""ClientWatch (worker/http/chat.py): the watcher of a job's client socket, in a process
patched by gevent as gunicorn's gevent worker patches it, with real sockets."""

from __future__ import annotations

import os

from tests.helpers.child import RESULT_PREFIX, run_python
from tests.helpers.processes import ROOT

PRELUDE = f"""
from gevent import monkey
monkey.patch_all()
import json, os, socket, sys, time
sys.path.insert(0, {str(ROOT)!r})
import gevent
from worker.http.chat import ClientWatch

def sockets():
    return sum(
        os.readlink(f"/proc/self/fd/{{fd}}").startswith("socket:")
        for fd in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{{fd}}")
    )

def emit(result):
    print({RESULT_PREFIX!r} + json.dumps(result), flush=True)
"""


def run(code: str) -> dict:
    return run_python(PRELUDE, code, dict(os.environ), timeout=60)


def test_a_client_that_closes_is_seen_gone() -> None:
    result = run(
        """
        server, client = socket.socketpair()
        gone = []
        watch = ClientWatch(server, lambda: gone.append(time.monotonic()))
        gevent.sleep(0.05)
        closed_at = time.monotonic()
        client.close()
        gevent.sleep(0.5)
        emit({"gone": watch.gone, "after": gone[0] - closed_at if gone else None})
        """
    )
    assert result["gone"] is True
    assert result["after"] is not None and result["after"] < 0.3


def test_a_stopped_watch_ends_at_once_and_never_wakes_for_the_next_request() -> None:
    result = run(
        """
        server, client = socket.socketpair()
        base = sockets()
        gone = []
        watch = ClientWatch(server, lambda: gone.append(1))
        gevent.sleep(0.05)  # the watcher waits on its duplicate of the socket
        watching = sockets()
        watch.stop()
        gevent.sleep(0)  # one turn of the loop
        stopped = sockets()
        client.sendall(b"POST /next HTTP/1.1\\r\\n")  # the next request on the connection
        gevent.sleep(0.05)
        emit({"base": base, "watching": watching, "stopped": stopped,
              "dead": watch._greenlet.dead, "gone": bool(gone),
              "unread": server.recv(64, socket.MSG_PEEK).decode()})
        """
    )
    assert result["watching"] == result["base"] + 1  # its duplicate descriptor
    assert result["stopped"] == result["base"]  # closed within one turn, not 0.2 s later
    assert result["dead"] is True
    assert result["gone"] is False
    assert result["unread"] == "POST /next HTTP/1.1\r\n"  # left for the server to read
