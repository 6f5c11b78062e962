"""One line per event: `<time> <LEVEL> <logger> <event> key=value ...`, or JSON with a switch.

Code logs messages of the form "event_name key=value key=value"; the formatter adds the
time, level and logger. Tracebacks are never written: an exception is logged by its class.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class TextFormatter(logging.Formatter):
    """UTC timestamps, one line, no traceback."""

    converter = time.gmtime

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, datefmt="%Y-%m-%dT%H:%M:%SZ")

    def format(self, record: logging.LogRecord) -> str:
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return super().format(record).replace("\n", "\\n")


def _fields(message: str) -> tuple[str, dict[str, str]]:
    event, _, rest = message.partition(" ")
    fields: dict[str, str] = {}
    try:
        tokens = shlex.split(rest)
    except ValueError:
        return event, {"detail": rest}
    for token in tokens:
        key, sep, value = token.partition("=")
        if sep:
            fields[key] = value
        else:
            fields.setdefault("detail", token)
    return event, fields


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "event", ...fields}` on one line, no traceback."""

    def format(self, record: logging.LogRecord) -> str:
        event, fields = _fields(record.getMessage())
        document: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname,
            "logger": record.name,
            "event": event,
            **fields,
        }
        return json.dumps(document, ensure_ascii=False)


class GunicornEvents(logging.Filter):
    """Turns gunicorn's own prose lines into events: `gunicorn message="Booting worker..."`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith("gunicorn "):
            record.msg = "gunicorn message=" + json.dumps(record.getMessage(), ensure_ascii=False)
            record.args = ()
        return True


def make_formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def setup_logging(level: str, log_format: str) -> None:
    """Send every logger to stderr, one line per event."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
