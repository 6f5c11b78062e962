"""Reading an error answered in OpenAI's shape `{"error": {message, type, param, code}}`."""

from __future__ import annotations

import json
from typing import Any


def openai_error(document: Any) -> dict[str, Any]:
    """The `error` object of `document` (a dict, or raw JSON bytes/str), checked to be in
    OpenAI's shape: exactly message, type, param and code, with a message to show."""
    if isinstance(document, bytes | str):
        document = json.loads(document)
    assert isinstance(document, dict) and set(document) == {"error"}, document
    error = document["error"]
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    return error


def error_code(document: Any) -> str:
    """The stable code of an OpenAI-shaped error (shape checked)."""
    return str(openai_error(document)["code"])
