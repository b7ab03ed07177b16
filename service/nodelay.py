"""uvicorn's HTTP protocol with TCP_NODELAY on every connection.

Why: with `--workers N` uvicorn binds the listening socket itself with protocol 0, and
asyncio then leaves Nagle's algorithm on for the connections it accepts (it sets
TCP_NODELAY only on sockets that say IPPROTO_TCP). A response written in two parts
(headers, body) then waits for the client's delayed ACK: a keep-alive client saw ~44 ms
per request with two workers (0.9 ms with one) on /health. Setting it per connection
makes both modes alike."""
from __future__ import annotations

import contextlib
import socket
from typing import Any

try:  # the faster parser when installed (uvicorn's own choice for "auto")
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - depends on the environment
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]


class NoDelayHTTP(_Base):  # type: ignore[misc, valid-type]
    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
