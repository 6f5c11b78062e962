"""The one error the translation raises: what is wrong with a request, and where."""

from __future__ import annotations


class InvalidRequest(Exception):
    """A request this worker will not send to Ollama: an HTTP status (4xx), a stable
    `code`, a `message` naming the problem (never echoing the client's data at length)
    and `param`, the request field at fault (`messages[2].content[0].type`)."""

    def __init__(self, code: str, message: str, param: str | None = None, status: int = 400):
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param


def invalid(field: str, message: str, param: str | None = None) -> InvalidRequest:
    """A malformed `field` (code `invalid_<field>`); `param` defaults to the field."""
    return InvalidRequest(f"invalid_{field}", message, param or field)


def unsupported(param: str, message: str) -> InvalidRequest:
    """A well-formed value this worker cannot honour (code `unsupported_field`)."""
    return InvalidRequest("unsupported_field", message, param)
