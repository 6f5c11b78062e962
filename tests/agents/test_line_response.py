"""LineResponse (worker/http/line_response.py): a streamed HTTP/1.1 answer read as lines.

Each test writes real bytes into one end of a socket pair, in the pieces a server might
send them, and reads the other end as OllamaChat does.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator

import pytest

from worker.http.line_response import BadResponse, LineResponse

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    client.settimeout(5)
    yield server, client
    server.close()
    client.close()


def reader(sock: socket.socket, max_line: int = 1024) -> tuple[LineResponse, list[int]]:
    """A LineResponse on `sock`, and the sizes of the reads it made."""
    reads: list[int] = []

    def receive() -> bytes:
        data = sock.recv(65536)
        reads.append(len(data))
        return data

    return LineResponse(receive, max_line), reads


def send_later(sock: socket.socket, *pieces: bytes) -> threading.Thread:
    """Send each piece a moment apart (so each arrives in its own read)."""

    def run() -> None:
        for piece in pieces:
            threading.Event().wait(0.02)
            sock.sendall(piece)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_lines_split_across_chunks_and_reads_come_out_whole(pair) -> None:
    server, client = pair
    body = b'{"a":1}\n{"b":2}\n{"done":true}\n'
    # The chunk boundaries fall inside lines, and the reads inside chunk framing.
    framed = chunk(body[:3]) + chunk(body[3:20]) + chunk(body[20:]) + b"0\r\n\r\n"
    sender = send_later(server, HEAD[:10], HEAD[10:] + framed[:5], framed[5:40], framed[40:])
    response, _ = reader(client)
    response.begin()
    assert response.status == 200
    lines = [response.readline() for _ in range(3)]
    assert lines == [b'{"a":1}\n', b'{"b":2}\n', b'{"done":true}\n']
    assert response.finish() is True  # chunked, HTTP/1.1, nothing after: reusable
    assert response.readline() == b""
    sender.join()


def test_a_buffered_line_needs_no_read(pair) -> None:
    server, client = pair
    server.sendall(HEAD + chunk(b"one\ntwo\n"))
    response, reads = reader(client)
    response.begin()
    assert response.readline() == b"one\n"
    made = len(reads)
    assert response.line_buffered() is True
    assert response.readline() == b"two\n"
    assert len(reads) == made  # from the buffer: no read
    assert response.line_buffered() is False  # now the next line needs the socket


def test_connection_close_or_bytes_after_the_last_line_are_not_reusable(pair) -> None:
    server, client = pair
    head = HEAD.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    server.sendall(head + chunk(b"x\n") + b"0\r\n\r\n")
    response, _ = reader(client)
    response.begin()
    assert response.readline() == b"x\n"
    assert response.finish() is False

    other_server, other_client = socket.socketpair()
    try:
        other_server.sendall(HEAD + chunk(b"x\npartial") + b"0\r\n\r\n")
        response, _ = reader(other_client)
        response.begin()
        assert response.readline() == b"x\n"
        assert response.finish() is False  # "partial" was never a whole line
    finally:
        other_server.close()
        other_client.close()


def test_an_error_answer_with_a_length_reads_its_body(pair) -> None:
    server, client = pair
    body = b'{"error":"model \\"nope\\" not found"}'
    server.sendall(
        b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    response, _ = reader(client)
    response.begin()
    assert response.status == 404
    assert response.read(64 * 1024) == body


def test_a_close_before_the_status_line_is_remote_disconnected(pair) -> None:
    server, client = pair
    server.close()
    response, _ = reader(client)
    with pytest.raises(http.client.RemoteDisconnected):
        response.begin()


def test_an_end_mid_body_returns_what_is_left_then_nothing(pair) -> None:
    server, client = pair
    server.sendall(HEAD + chunk(b'{"a":1}\n{"b"'))
    server.shutdown(socket.SHUT_WR)
    response, _ = reader(client)
    response.begin()
    assert response.readline() == b'{"a":1}\n'
    assert response.readline() == b'{"b"'
    assert response.readline() == b""
    assert response.finish() is False


def test_malformed_http_is_a_bad_response_with_safe_text(pair) -> None:
    server, client = pair
    server.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz-secret\r\n")
    response, _ = reader(client)
    response.begin()
    with pytest.raises(BadResponse) as caught:
        response.readline()
    assert "secret" not in str(caught.value)
    assert str(caught.value).startswith("Ollama sent malformed HTTP")


def test_a_line_over_the_limit_is_refused(pair) -> None:
    server, client = pair
    server.sendall(HEAD + chunk(b"x" * 300) + chunk(b"x" * 300))
    response, _ = reader(client, max_line=512)
    response.begin()
    with pytest.raises(BadResponse, match="over 512 bytes"):
        response.readline()


def test_the_receive_functions_errors_reach_the_caller(pair) -> None:
    server, client = pair
    server.sendall(HEAD)
    client.settimeout(0.05)
    response, _ = reader(client)
    response.begin()
    with pytest.raises(TimeoutError):
        response.readline()  # nothing more comes


def test_lines_before_a_fault_are_read_then_the_fault_is_raised(pair) -> None:
    server, client = pair
    server.sendall(HEAD + chunk(b"a\nb\n") + chunk(b"partial") + b"zz\r\n")
    response, _ = reader(client)
    response.begin()
    assert [response.readline(), response.readline()] == [b"a\n", b"b\n"]
    with pytest.raises(BadResponse):
        response.readline()  # "partial" never ended: not returned as a line
    assert response.finish() is False
