"""A minimal HTTP/1.1 client connection for the Kubernetes API reader.

Why not http.client: importing it pulls in the email package (~9 ms of every
script's start here), and check's budget is a few milliseconds over Python's
own. This speaks the subset the API server uses: one request at a time on a
kept-alive socket, Content-Length, chunked or read-to-close bodies, TLS through
an ssl.SSLContext. It mirrors the http.client calls kube.py makes
(request, getresponse, close); errors are OSError (TimeoutError, ssl.SSLError)
or ProtocolError.
"""
from __future__ import annotations

import socket
from typing import Any, Mapping

MAX_LINE = 65536
MAX_HEADERS = 200


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.x as we understand it."""


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self._body = status, headers, body

    def read(self) -> bytes:
        return self._body


class Connection:
    def __init__(self, host: str, port: int, timeout: float, context: Any = None) -> None:
        self.host, self.port, self.timeout, self.context = host, port, timeout, context
        self._sock: socket.socket | None = None
        self._file: Any = None
        self._response: Response | None = None

    def _connect(self) -> None:
        # An ASCII host as bytes skips the idna codec import in getaddrinfo.
        address = self.host.encode("ascii") if self.host.isascii() else self.host
        sock = socket.create_connection((address, self.port), self.timeout)
        if self.context is not None:
            try:
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
        self._sock, self._file = sock, sock.makefile("rb")

    def request(self, method: str, url: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None) -> None:
        if self._sock is None:
            self._connect()
        host = self.host if ":" not in self.host else f"[{self.host}]"
        lines = [f"{method} {url} HTTP/1.1", f"Host: {host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        self._sock.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + (body or b""))
        self._response = self._read_response(method)

    def getresponse(self) -> Response:
        response, self._response = self._response, None
        if response is None:
            raise ProtocolError("no request was sent")
        return response

    def close(self) -> None:
        for item in (self._file, self._sock):
            if item is not None:
                item.close()
        self._sock = self._file = None

    # -- reading
    def _line(self) -> bytes:
        line = self._file.readline(MAX_LINE + 1)
        if not line:
            raise ProtocolError("the server closed the connection")
        if len(line) > MAX_LINE:
            raise ProtocolError("response line too long")
        return line

    def _read_response(self, method: str) -> Response:
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
            body = self._exactly(int(headers["content-length"]))
        else:
            body = self._file.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
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
            headers[name.strip().lower()] = value.strip()
        raise ProtocolError("too many headers")

    def _exactly(self, size: int) -> bytes:
        data = self._file.read(size)
        if len(data) != size:
            raise ProtocolError(f"response body cut short ({len(data)} of {size} bytes)")
        return data

    def _chunked(self) -> bytes:
        chunks = []
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError("bad chunk size") from None
            if size == 0:
                while self._line() not in (b"\r\n", b"\n"):  # trailers
                    pass
                return b"".join(chunks)
            chunks.append(self._exactly(size))
            self._line()  # the CRLF after each chunk
