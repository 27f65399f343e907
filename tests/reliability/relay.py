"""A TCP relay on loopback for the fault tests: it holds every chunk for ``delay`` seconds (a slow
link) and, with ``drop``, closes that share of new connections before a byte (a lossy one)."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from tests.gitservers import free_port


@contextmanager
def relay(
    target_port: int, delay: float, drop: float = 0.0, seed: int = 0, live: list[socket.socket] | None = None
) -> Iterator[int]:
    """Yields the relay's port; everything sent to it reaches ``target_port`` on 127.0.0.1.
    ``live`` collects the open connections' sockets, for :func:`cut`."""
    rng = random.Random(seed)
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))
    listener.settimeout(0.2)
    stop = threading.Event()

    def pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                time.sleep(delay)
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):  # shutdown wakes the other direction's pump; close frees the socket
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with suppress(OSError):
                    s.close()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            if drop and rng.random() < drop:
                client.close()  # the connection drops before a byte
                continue
            upstream = socket.create_connection(("127.0.0.1", target_port))
            if live is not None:
                live.extend((client, upstream))
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def cut(live: list[socket.socket]) -> None:
    """Close every connection the relay holds, from its side, as a load balancer closing idle ones does."""
    for s in live:
        with suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
    live.clear()
