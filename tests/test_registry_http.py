"""The registries over http1, the HTTP layer check uses too: what tag_check needs of it.

A scripted server in the test answers each request with crafted bytes (chunked and
Content-Length bodies, a dropped kept-alive connection, a body over the 1 MiB cap, an answer
trickled past the deadline, repeated headers), plain or over TLS with the test PKI. HEAD,
redirects, 5xx retries and timeouts against real and fake registries: tests/test_tag_check.py.
"""
from __future__ import annotations

import json
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from typing import Callable, Iterator

import pytest

from octopod_control import registry as reg
from tests.conftest import ROOT
from tests.support.tls import PKI, make_pki

Answer = Callable[[str, int], "bytes | list[bytes] | None"]  # (request line, index on its connection)


def http(status: int, *headers: str, body: bytes = b"", chunked: bool = False) -> bytes:
    head = [f"HTTP/1.1 {status} X", *headers]
    if chunked:
        head.append("Transfer-Encoding: chunked")
        half = len(body) // 2
        body = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n"
                        for part in (body[:half], body[half:]) if part) + b"0\r\n\r\n"
    else:
        head.append(f"Content-Length: {len(body)}")
    return "\r\n".join(head).encode() + b"\r\n\r\n" + body


class Scripted(socketserver.ThreadingTCPServer):
    """A server on `host`: each request gets answer(request line, its index on the connection):
    bytes, a list of pieces sent 0.3 s apart, or None (the connection is closed unanswered).
    `{host}` in an answer becomes the server's own host:port."""

    daemon_threads, block_on_close = True, False

    def __init__(self, answer: Answer, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None):
        self.answer, self.tls = answer, tls
        self.connections, self.requests = 0, []
        super().__init__((host, 0), Exchange)
        self.host = f"{host}:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class Exchange(socketserver.BaseRequestHandler):
    """One connection: requests read one after another, each answered as the script says."""

    server: Scripted

    def handle(self) -> None:
        script, conn = self.server, self.request
        script.connections += 1
        try:
            if script.tls:
                conn = script.tls.wrap_socket(conn, server_side=True)
            reader = conn.makefile("rb")
            for index in range(100):
                line = reader.readline().decode("latin-1").strip()
                if not line:
                    return
                length = 0
                while (header := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    length = int(value) if name.lower() == "content-length" else length
                reader.read(length)
                script.requests.append(line)
                answer = script.answer(line, index)
                if answer is None:
                    return
                for piece in answer if isinstance(answer, list) else [answer]:
                    conn.sendall(piece.replace(b"{host}", script.host.encode()))
                    if isinstance(answer, list):
                        time.sleep(0.3)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Scripted]]:
    servers: list[Scripted] = []

    def start(answer: Answer, **kw) -> Scripted:
        servers.append(Scripted(answer, **kw))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def check(host: str, *repositories: str, scheme: str = "http", timeout: float = 10) -> list[reg.Result]:
    images = [reg.parse_reference(f"{host}/{r}") for r in repositories or ("team/app",)]
    return reg.check_images(images, "v1", timeout=timeout, insecure=scheme == "http",
                            credentials=lambda registry, left: None)


MANIFEST = http(200, "Content-Type: application/vnd.oci.image.manifest.v1+json")


def test_one_kept_alive_connection_serves_every_image(serve):
    server = serve(lambda line, index: MANIFEST)
    results = check(server.host, "team/a", "team/b", "team/c")
    assert [(r.kind, r.error, r.round_trips) for r in results] == [("OCI manifest", None, 1)] * 3
    assert server.connections == 1
    assert server.requests == [f"HEAD /v2/team/{x}/manifests/v1 HTTP/1.1" for x in "abc"]


def test_a_dropped_kept_alive_connection_is_retried_once_on_a_new_one(serve):
    server = serve(lambda line, index: MANIFEST if index == 0 else None)
    results = check(server.host, "team/a", "team/b")
    assert [r.error for r in results] == [None, None]
    assert (server.connections, len(server.requests)) == (2, 3)


def token_flow(token: bytes, chunked: bool = False) -> Answer:
    """A registry and its token realm on one host: HEAD (401), GET /token, HEAD with the token."""
    def answer(line: str, index: int) -> bytes:
        if line.startswith("GET /token"):
            return http(200, "Content-Type: application/json", body=token, chunked=chunked)
        if index == 2:
            return MANIFEST
        return http(401, 'WWW-Authenticate: Bearer realm="http://{host}/token",service="s"')
    return answer


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_token_bodies_of_either_framing_are_read(serve, chunked):
    server = serve(token_flow(json.dumps({"token": "t" * 5000}).encode(), chunked))
    [result] = check(server.host)
    assert (result.kind, result.error, result.round_trips) == ("OCI manifest", None, 3)
    assert server.connections == 1


def test_an_answer_over_1_mib_is_refused_in_one_line(serve):
    server = serve(token_flow(json.dumps({"token": "t" * (1 << 20)}).encode()))
    [result] = check(server.host)
    assert isinstance(result.error, reg.RegistryError) and result.error.kind == "protocol"
    assert str(result.error) == (f"{server.host}/team/app:v1: registry {server.host}: GET /token: "
                                 "the response body is larger than 1 MiB (Content-Length); refused")


def test_the_first_of_repeated_challenges_is_the_one_answered(serve):
    server = serve(lambda line, index: http(401, 'WWW-Authenticate: Basic realm="r"',
                                            'WWW-Authenticate: Bearer realm="http://x/token"'))
    [result] = check(server.host)
    assert "requires credentials (Basic auth)" in str(result.error)


def test_an_answer_trickled_past_the_deadline_is_cut_off_on_time(serve):
    """Every piece arrives within a socket timeout's reach; the run's deadline still ends it."""
    server = serve(lambda line, index: [b"HTTP/1.1 200 OK\r\n"] + [b"X-Slow: 1\r\n"] * 20)
    started = time.monotonic()
    [result] = check(server.host, timeout=1)
    assert time.monotonic() - started < 3
    assert "did not answer within 1s (REGISTRY_TIMEOUT)" in str(result.error)


# -- TLS: the certificate and the host name are both checked
@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_server(serve, pki: PKI, monkeypatch) -> Callable[[str], Scripted]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))  # the test CA is the one trusted
    return lambda host: serve(lambda line, index: MANIFEST, host=host, tls=context)


def test_https_with_a_trusted_certificate_for_the_host(tls_server):
    server = tls_server("127.0.0.1")  # the certificate names IP 127.0.0.1 and DNS localhost
    [result] = check(server.host, scheme="https")
    assert (result.kind, result.error) == ("OCI manifest", None)
    [result] = check(server.host.replace("127.0.0.1", "localhost"), scheme="https")
    assert (result.kind, result.error) == ("OCI manifest", None)


def test_https_refuses_a_certificate_for_another_host(tls_server):
    server = tls_server("127.0.0.2")  # loopback too, but not a name the certificate holds
    [result] = check(server.host, scheme="https")
    assert result.error is not None and result.error.kind == "unreachable"
    assert f"TLS with registry {server.host} failed" in str(result.error)
    assert "mismatch" in str(result.error)


def test_https_refuses_an_untrusted_certificate(tls_server, pki: PKI, monkeypatch):
    server = tls_server("127.0.0.1")
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.other_ca))
    [result] = check(server.host, scheme="https")
    assert f"TLS with registry {server.host} failed" in str(result.error)
    assert "certificate verify failed" in str(result.error) or "unable to get local issuer" in str(result.error)


def test_the_registry_imports_no_http_client():
    """One HTTP layer: tag_check no longer pays for http.client and the email package."""
    code = "import sys, octopod_control.registry; print(sorted({'http.client', 'email'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-P", "-c", code], env={"PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "[]\n"), done.stderr
