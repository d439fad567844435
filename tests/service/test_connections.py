"""Connection guards, on raw sockets: slow request headers are cut off, open connections are capped.

The server has a 1 s header timeout and at most 4 open connections, and serves the dcp
baseline only, so it starts quickly.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

HEADER_TIMEOUT = 1.0
MAX_CONNECTIONS = 4
PARTIAL = b"POST /dehaze HTTP/1.1\r\nHost: x\r\n"  # the blank line that ends the headers never comes


@pytest.fixture(scope="module")
def guarded(svc, tmp_path_factory):
    d = tmp_path_factory.mktemp("guarded")
    s = svc.start_server(
        d,
        ["--method", "dcp", "--header-timeout", str(HEADER_TIMEOUT)],
        {"DEHAZE_MODEL": str(d / "absent.onnx"), "DEHAZE_MAX_CONNECTIONS": str(MAX_CONNECTIONS)},
    )
    yield s
    s.stop()


def connect(server, first: bytes = b"") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=HEADER_TIMEOUT + 10)
    if first:
        s.sendall(first)
    return s


def read_until_closed(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a recv timeout fails the test)."""
    data = b""
    while got := s.recv(65536):
        data += got
    return data


def answers(server) -> bool:
    with server.client(timeout=10) as c:
        return c.get("/healthz").status_code == 200


def test_partial_headers_are_closed_after_the_header_timeout(guarded):
    socks = [connect(guarded, PARTIAL) for _ in range(3)]
    t0 = time.monotonic()
    replies = [read_until_closed(s) for s in socks]
    took = time.monotonic() - t0
    for s in socks:
        s.close()
    assert HEADER_TIMEOUT - 0.3 < took < HEADER_TIMEOUT + 3, took
    for reply in replies:
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408") and json.loads(body)["error"] == "header_timeout"
    assert answers(guarded)  # the service itself is unaffected


def test_a_header_byte_now_and_then_does_not_extend_the_deadline(guarded):
    s = connect(guarded)
    t0 = time.monotonic()
    s.settimeout(0.25)
    closed = False
    for byte in PARTIAL + b"X-Pad: " + b"a" * 40:  # one valid header byte every 0.25 s, for 20 s
        try:
            s.sendall(bytes([byte]))
            closed = s.recv(65536) == b"" or closed  # the 408 arrives first, then the close
        except TimeoutError:
            continue
        except OSError:  # reset after the server closed
            closed = True
        if closed:
            break
    s.close()
    assert closed and time.monotonic() - t0 < HEADER_TIMEOUT + 3


def test_an_idle_connection_is_closed_silently(guarded):
    s = connect(guarded)  # connects and never sends a byte
    t0 = time.monotonic()
    assert read_until_closed(s) == b""
    s.close()
    assert time.monotonic() - t0 < HEADER_TIMEOUT + 3


def test_open_connections_are_capped(guarded):
    held = [connect(guarded, PARTIAL) for _ in range(MAX_CONNECTIONS)]
    time.sleep(0.2)  # let the server accept them all
    extra = connect(guarded)
    t0 = time.monotonic()
    reply = read_until_closed(extra)
    extra.close()
    assert time.monotonic() - t0 < HEADER_TIMEOUT / 2  # refused at once, not after the timeout
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in head.lower()
    assert json.loads(body)["error"] == "too_many_connections"
    for s in held:  # the held ones are cut off by the header timeout, which frees the places
        read_until_closed(s)
        s.close()
    assert answers(guarded)


def test_keep_alive_requests_still_work(guarded):
    with guarded.client(timeout=10) as c:
        for _ in range(3):
            assert c.get("/healthz").status_code == 200
        time.sleep(HEADER_TIMEOUT + 0.5)  # idle between requests is the keep-alive timer's business
        assert c.get("/readyz").status_code == 200
