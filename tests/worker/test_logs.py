"""Log lines: one line per event, key=value or JSON, never a traceback."""

from __future__ import annotations

import json
import logging

from worker.logs import JsonFormatter, TextFormatter


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    return logging.LogRecord(
        "agent_net.test", logging.WARNING, __file__, 1, message, args, exc_info
    )


def test_text_line_has_time_level_logger_event_and_fields() -> None:
    line = TextFormatter().format(record("source_unavailable source=%s reason=%r", "nvml", "x y"))
    stamp, level, logger, event, *fields = line.split(" ", 4)
    assert stamp.endswith("Z") and level == "WARNING" and logger == "agent_net.test"
    assert event == "source_unavailable"
    assert fields == ["source=nvml reason='x y'"]


def test_no_traceback_and_one_line_even_with_exception_info() -> None:
    line = TextFormatter().format(record("request_failed error=%s", "ValueError", exc=True))
    assert "\n" not in line and "Traceback" not in line and "boom" not in line


def test_json_lines_split_event_and_fields() -> None:
    line = JsonFormatter().format(
        record("registration_ok orchestrator=%s attempt=%d", "o", 3, exc=True)
    )
    document = json.loads(line)
    assert document["event"] == "registration_ok"
    assert document["orchestrator"] == "o" and document["attempt"] == "3"
    assert document["level"] == "WARNING" and "Traceback" not in line


def test_gunicorn_prose_becomes_an_event_line() -> None:
    from worker.logs import GunicornEvents

    raw = logging.LogRecord(
        "gunicorn.error",
        logging.WARNING,
        __file__,
        1,
        "Invalid request from ip=%s: %s",
        ("127.0.0.1", 'Invalid HTTP method: "GE T"'),
        None,
    )
    assert GunicornEvents().filter(raw) is True
    document = json.loads(JsonFormatter().format(raw))
    assert document["event"] == "gunicorn"
    assert document["message"] == 'Invalid request from ip=127.0.0.1: Invalid HTTP method: "GE T"'
    text = TextFormatter().format(raw)
    assert text.endswith(
        'gunicorn.error gunicorn message="Invalid request from ip=127.0.0.1: '
        'Invalid HTTP method: \\"GE T\\""'
    )
