"""The chaos test's TCP proxy: forwards, drops every connection at once, refuses or holds new ones."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.tcp_proxy import TcpProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield str(host), int(port)
    server.shutdown()
    server.server_close()


def _connect(proxy: TcpProxy) -> socket.socket:
    return socket.create_connection((proxy.host, proxy.port), timeout=5)


def _echoes(sock: socket.socket, payload: bytes) -> bool:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            return False
        received += chunk
    return received == payload


def test_forwards_both_ways_including_large_payloads(echo: tuple[str, int]) -> None:
    with TcpProxy(*echo) as proxy, _connect(proxy) as one, _connect(proxy) as two:
        assert _echoes(one, b"ping")
        assert _echoes(two, b"x" * 300_000)
        assert proxy.connections == 2
        assert proxy.stats.forwarded == 2


def test_drop_resets_every_current_connection_and_new_ones_work(echo: tuple[str, int]) -> None:
    with TcpProxy(*echo) as proxy:
        old = [_connect(proxy) for _ in range(3)]
        for sock in old:
            assert _echoes(sock, b"before")
        assert proxy.drop() == 3
        for sock in old:
            with pytest.raises(OSError):
                sock.sendall(b"after")
                if not sock.recv(16):
                    raise ConnectionResetError("closed")
            sock.close()
        assert proxy.stats.dropped == 3 and proxy.stats.drops == 1
        with _connect(proxy) as fresh:
            assert _echoes(fresh, b"fresh")


def test_block_refuses_new_connections_for_a_while(echo: tuple[str, int]) -> None:
    with TcpProxy(*echo) as proxy, _connect(proxy) as kept:
        assert _echoes(kept, b"kept")
        proxy.block(0.6)
        with _connect(proxy) as refused, pytest.raises(OSError):
            refused.sendall(b"x")
            if not refused.recv(16):
                raise ConnectionResetError("closed")
        assert _echoes(kept, b"still open")  # a block leaves current connections alone
        time.sleep(0.7)
        with _connect(proxy) as later:
            assert _echoes(later, b"later")
        assert proxy.stats.refused == 1


def test_block_with_hold_forwards_once_the_block_ends(echo: tuple[str, int]) -> None:
    with TcpProxy(*echo) as proxy:
        proxy.block(0.5, hold=True)
        began = time.monotonic()
        with _connect(proxy) as held:
            assert _echoes(held, b"held")
        assert time.monotonic() - began >= 0.4
        assert proxy.stats.refused == 0


def test_a_target_that_is_down_is_a_reset(echo: tuple[str, int]) -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        free_port = placeholder.getsockname()[1]
    with TcpProxy("127.0.0.1", free_port) as proxy:
        # the reset may come while connecting, sending or reading: each is the answer
        with pytest.raises(OSError), _connect(proxy) as sock:
            sock.sendall(b"x")
            if not sock.recv(16):
                raise ConnectionResetError("closed")
        deadline = time.monotonic() + 5
        while proxy.stats.refused != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proxy.stats.refused == 1
