"""A fault-injecting TCP proxy between the app and a real redis-server.

Some faults must land *between* a command and its reply: the server has
executed the command, the client never hears back. ``FaultProxy`` forwards
bytes both ways on a loopback port and, when armed with
:meth:`FaultProxy.drop_reply_to`, lets the next command containing a marker
through to the server, waits until the server has answered (so the command
really ran), then resets the client's connection without passing the reply on.
"""

from __future__ import annotations

import select
import socket
import struct
import threading

from .servers import free_port


class FaultProxy:
    """``127.0.0.1:<port>`` → ``127.0.0.1:<target_port>``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._lock = threading.Lock()
        self._markers: list[bytes] = []
        #: How many replies were dropped so far.
        self.dropped = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def drop_reply_to(self, marker: bytes, times: int = 1) -> None:
        """Drop the reply of the next ``times`` commands whose bytes contain ``marker``."""
        with self._lock:
            self._markers.extend([marker.upper()] * times)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(2)

    # -- internals ---------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            thread = threading.Thread(target=self._pipe, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _take_marker(self, data: bytes) -> bool:
        upper = data.upper()
        with self._lock:
            for i, marker in enumerate(self._markers):
                if marker in upper:
                    del self._markers[i]
                    return True
        return False

    def _pipe(self, client: socket.socket) -> None:
        server = socket.create_connection(("127.0.0.1", self.target_port))
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([client, server], [], [], 0.2)
                if client in ready:
                    data = client.recv(65536)
                    if not data:
                        return
                    server.sendall(data)
                    if self._take_marker(data):
                        server.settimeout(5)
                        server.recv(65536)  # the reply: the command ran
                        self.dropped += 1
                        # RST rather than FIN: the client sees a reset connection.
                        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        return
                if server in ready:
                    data = server.recv(65536)
                    if not data:
                        return
                    client.sendall(data)
        except OSError:
            return
        finally:
            client.close()
            server.close()
