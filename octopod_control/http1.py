"""The one HTTP/1.1 client: Kubernetes API reads (kube.py) and OCI registries (registry.py).

Why this and not http.client, for both: importing http.client pulls in the email package.
Measured on the 2-core shared machine: on top of what check already imports, http.client
costs 6.2 ms and this module 0.2 ms (`python -X importtime`, median of 15); a real check
against the emulator, interleaved, median of 40, was 105.4 ms as it is and 112.3 ms with
http.client imported as well (`python -c "import invoke"`: 87.6 ms, so 1.20x against 1.28x).
check runs every 30 s for each staging, so the API stays on this client, and the registries
came over to it rather than keep a second stack: tag_check's own cost over its start-up fell
from 15.9 to 13.2 ms anonymous, 14.6 to 7.8 ms with Basic auth (bench/tag_check.py, medians
of 25).

What it speaks: one request at a time on a kept-alive socket (one the server dropped unanswered
is RemoteDisconnected, a connection reset worth one retry); GET, HEAD (never a body), POST;
Content-Length, chunked or read-to-close bodies, read whole up to `max_body` (64 MiB for the
API, 1 MiB for registries) and otherwise refused unread (BodyTooLarge, an ExternalError
naming `label`, the connection dropped); repeated header fields joined with ", " (the first
WWW-Authenticate challenge stays first); TLS through the caller's ssl.SSLContext, given the
host name to check (a default context checks it); a redirect is an answer like any other, never followed. It mirrors the
http.client calls its callers make (request, getresponse, close); errors are OSError
(TimeoutError, ssl.SSLError, ConnectionResetError), ProtocolError or BodyTooLarge.

Each request has a deadline for the whole exchange (connect, send, every read):
the socket's timeout is set to what is left of it before each one, so a server
that trickles its answer byte by byte is cut off on time, not once per byte.
"""
from __future__ import annotations

import socket
import time
from typing import Any, Mapping

from .errors import ExternalError

MAX_LINE = 65536
MAX_HEADERS = 200
RECV_SIZE = 65536
# A LIST page (limit=500) of even large objects is a few MiB; an answer past this is a broken
# or hostile server, and reading it would take the memory of a small pod.
MAX_BODY = 64 * 1024 * 1024


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.x as we understand it."""


class RemoteDisconnected(ConnectionResetError, ProtocolError):
    """The server closed the connection without answering (a kept-alive one it had dropped):
    a connection reset, worth one retry on a new connection (as http.client's namesake)."""


class BodyTooLarge(ExternalError):
    """The answer's body is over the connection's max_body; refused unread, connection dropped."""


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self._body = status, headers, body

    def read(self) -> bytes:
        return self._body


class Connection:
    def __init__(self, host: str, port: int, timeout: float, context: Any = None,
                 max_body: int = MAX_BODY, label: str = "Kubernetes API") -> None:
        self.host, self.port, self.timeout, self.context = host, port, timeout, context
        self.max_body = max_body
        self.label = label  # who answers, in messages: "Kubernetes API", "registry"
        self._asked = ""  # "METHOD /path" of the current request, for messages
        self._sock: socket.socket | None = None
        self._buf = bytearray()  # received, not yet consumed
        self._deadline = 0.0  # time.monotonic() by which the current exchange must be over
        self._response: Response | None = None

    def _left(self) -> float:
        """Seconds left of the current exchange; TimeoutError when none."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        return left

    def _connect(self) -> None:
        # An ASCII host as bytes skips the idna codec import in getaddrinfo.
        address = self.host.encode("ascii") if self.host.isascii() else self.host
        sock = socket.create_connection((address, self.port), self._left())
        if self.context is not None:
            try:
                sock.settimeout(self._left())  # the TLS handshake
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
        self._sock = sock
        self._buf.clear()

    def request(self, method: str, url: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None, deadline: float | None = None) -> None:
        """Send one request and read its response, all by `deadline` (a time.monotonic()
        value; default: `timeout` seconds from now)."""
        self._deadline = deadline if deadline is not None else time.monotonic() + self.timeout
        self._asked = f"{method} {url.split('?', 1)[0]}"
        if self._sock is None:
            self._connect()
        host = self.host if ":" not in self.host else f"[{self.host}]"
        if self.port != (80 if self.context is None else 443):  # as http.client: no default port
            host = f"{host}:{self.port}"
        lines = [f"{method} {url} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        self._sock.settimeout(self._left())  # sendall's timeout bounds the whole send
        self._sock.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + (body or b""))
        self._response = self._read_response(method)

    def getresponse(self) -> Response:
        response, self._response = self._response, None
        if response is None:
            raise ProtocolError("no request was sent")
        return response

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._buf.clear()

    # -- reading: one recv at a time, each bounded by what is left of the deadline
    def _fill(self) -> bool:
        """Receive more into the buffer; False when the server has closed the connection."""
        self._sock.settimeout(self._left())
        data = self._sock.recv(RECV_SIZE)
        if not data:
            return False
        self._buf += data
        return True

    def _take(self, size: int) -> bytes:
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def _line(self) -> bytes:
        searched = 0
        while True:
            end = self._buf.find(b"\n", searched)
            if end >= 0:
                if end >= MAX_LINE:
                    raise ProtocolError("response line too long")
                return self._take(end + 1)
            if len(self._buf) >= MAX_LINE:
                raise ProtocolError("response line too long")
            searched = len(self._buf)
            if not self._fill():
                raise ProtocolError("the server closed the connection")

    def _read_response(self, method: str) -> Response:
        if not self._buf and not self._fill():
            self.close()
            raise RemoteDisconnected("the server closed the connection without answering")
        while True:  # skip interim 1xx answers
            parts = self._line().split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise ProtocolError(f"bad status line {bytes(parts[0][:40])!r}" if parts else "empty status line")
            status = int(parts[1])
            headers = self._headers()
            if not 100 <= status < 200:
                break
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._chunked()
        elif "content-length" in headers:
            body = self._exactly(self._bounded(self._content_length(headers), "Content-Length"))
        else:
            while self._fill():  # read to close
                self._bounded(len(self._buf), "read to close")
            body = self._take(len(self._buf))
            headers["connection"] = "close"
        if "close" in (token.strip() for token in headers.get("connection", "").lower().split(",")):
            self.close()
        return Response(status, headers, body)

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS):
            line = self._line()
            if line in (b"\r\n", b"\n"):
                return headers
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise ProtocolError("malformed header line")
            name, value = name.strip().lower(), value.strip()
            # A repeated field is one comma-separated list (RFC 9110 5.3): the first
            # WWW-Authenticate challenge stays first; two Content-Lengths no longer parse.
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        raise ProtocolError("too many headers")

    @staticmethod
    def _content_length(headers: dict[str, str]) -> int:
        text = headers["content-length"]
        if not (text.isascii() and text.isdigit()):
            raise ProtocolError(f"bad Content-Length {text[:40]!r}")
        return int(text)

    def _bounded(self, size: int, how: str) -> int:
        """size, when the body may be that large; else the connection is dropped, unread."""
        if size <= self.max_body:
            return size
        self.close()
        raise BodyTooLarge(f"{self.label} {self.host}:{self.port}: {self._asked}: the response "
                           f"body is larger than {_mib(self.max_body)} ({how}); refused")

    def _exactly(self, size: int) -> bytes:
        while len(self._buf) < size:
            if not self._fill():
                raise ProtocolError(f"response body cut short ({len(self._buf)} of {size} bytes)")
        return self._take(size)

    def _chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                size = -1
            if size < 0:
                raise ProtocolError("bad chunk size")
            if size == 0:
                while self._line() not in (b"\r\n", b"\n"):  # trailers
                    pass
                return b"".join(chunks)
            total = self._bounded(total + size, "chunked")
            chunks.append(self._exactly(size))
            self._line()  # the CRLF after each chunk


def _mib(size: int) -> str:
    return f"{size / 1048576:g} MiB" if size >= 1048576 else f"{size} bytes"
