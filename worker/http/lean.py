"""The hot routes answered without Flask: `POST` to a job route or to an agent.

An orchestrator calls these at its job rate, and Flask's request machinery (request and
app contexts, URL adapter, signals, sessions) costs about as much as a whole /gpu-check
answer, and sits on the path to an agent's first token. A `POST` with a Content-Length to
exactly one of these paths is answered here by the very handler Flask's route calls, with
the same checks, JSON errors, log lines and metrics; anything else (another method, a
chunked body, another path) goes to Flask as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.wrappers import Response

from worker.http.errors import answer_error, sized_body
from worker.http.metrics import STARTED_KEY, RequestRecorder

Handler = Callable[[dict[str, Any]], Response]
WsgiApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


class LeanRoutes:
    """WSGI: `routes` (path -> handler of the environ) for sized POSTs, else `inner`."""

    def __init__(
        self,
        inner: WsgiApp,
        routes: dict[str, Handler],
        recorder: RequestRecorder,
        max_body_bytes: int,
    ) -> None:
        self._inner, self.routes = inner, routes  # path -> handler
        self._recorder, self._max_body_bytes = recorder, max_body_bytes

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        handler = self.routes.get(environ.get("PATH_INFO", ""))
        if handler is None or environ.get("REQUEST_METHOD") != "POST" or not sized_body(environ):
            return self._inner(environ, start_response)
        started = environ[STARTED_KEY] = time.perf_counter()
        path = environ["PATH_INFO"]
        try:
            response = handler(environ)
        except Exception as error:  # every error is a JSON answer, as Flask's handlers give
            response = answer_error(error, environ, path, self._max_body_bytes)
        self._recorder.record_route(path, "POST", response.status_code, started)
        return response(environ, start_response)
