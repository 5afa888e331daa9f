"""Bounded reads: an API answer or a release record too large to hold is refused, not read.

A tiny HTTP server in the test crafts the answers (Content-Length, chunked, read to
close); a gzip bomb stands in for a planted helm release record.
"""
from __future__ import annotations

import base64
import json
import socket
import subprocess
import threading
import time
import zlib
from typing import Iterator

import pytest

from octopod_control import release_record
from octopod_control.errors import ExternalError
from octopod_control.http1 import MAX_BODY, Connection, ProtocolError
from octopod_control.release_record import MAX_RECORD, decode
from tests.conftest import tool

MIB = 1024 * 1024


class OneShotServer:
    """Accepts connections; answers each request with `answer` (bytes), then holds the socket open."""

    def __init__(self, answer: bytes, close: bool = False) -> None:
        self.answer, self.close_after = answer, close
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            with conn.makefile("rb") as reader:
                while reader.readline() not in (b"\r\n", b""):
                    pass
                conn.sendall(self.answer)
            if self.close_after:
                conn.close()
            else:
                self.held.append(conn)  # a body promised and never sent: only a refusal ends quickly
        except OSError:
            pass

    def stop(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def serve() -> Iterator:
    servers: list[OneShotServer] = []

    def start(answer: bytes, close: bool = False) -> OneShotServer:
        servers.append(OneShotServer(answer, close))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def fetch(server: OneShotServer, max_body: int = MAX_BODY, timeout: float = 5) -> bytes:
    conn = Connection("127.0.0.1", server.port, timeout, max_body=max_body)
    try:
        conn.request("GET", "/api/v1/namespaces/n/secrets?labelSelector=owner%3Dhelm")
        return conn.getresponse().read()
    finally:
        conn.close()


# A refusal takes milliseconds; reading on until the socket timeout would take READ_TIMEOUT. The
# bound sits far from both (a loaded 2-core machine may stall for seconds, never for a minute).
READ_TIMEOUT, REFUSED_WITHIN = 60, 15


def refused(server: OneShotServer, max_body: int = MAX_BODY) -> str:
    started = time.monotonic()
    with pytest.raises(ExternalError) as caught:
        fetch(server, max_body, timeout=READ_TIMEOUT)
    elapsed = time.monotonic() - started
    assert elapsed < REFUSED_WITHIN, f"{elapsed:.1f}s: read until the timeout, not refused at once"
    message = str(caught.value)
    assert message.startswith(f"Kubernetes API 127.0.0.1:{server.port}: GET /api/v1/namespaces/n/secrets: ")
    assert "\n" not in message and "labelSelector" not in message
    return message


def test_a_content_length_over_64_mib_is_refused_unread(serve):
    server = serve(f"HTTP/1.1 200 OK\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n{{".encode())
    assert refused(server).endswith("the response body is larger than 64 MiB (Content-Length); refused")


def test_a_chunk_over_64_mib_is_refused_unread(serve):
    server = serve(f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{MAX_BODY + 1:x}\r\n{{".encode())
    assert refused(server).endswith("larger than 64 MiB (chunked); refused")


def test_chunks_adding_up_past_the_limit_are_refused(serve):
    chunk = b"190\r\n" + b"x" * 400 + b"\r\n"  # 400 bytes each
    server = serve(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 3)
    assert refused(server, max_body=1000).endswith("larger than 1000 bytes (chunked); refused")


def test_a_body_read_to_close_past_the_limit_is_refused(serve):
    server = serve(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 200_000, close=True)
    assert refused(server, max_body=100_000).endswith("larger than 100000 bytes (read to close); refused")


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1f4\r\n" + b"x" * 500 + b"\r\n1f4\r\n"
    + b"x" * 500 + b"\r\n0\r\n\r\n",
])
def test_a_body_of_exactly_the_limit_is_read(serve, answer):
    assert fetch(serve(answer), max_body=1000) == b"x" * 1000


@pytest.mark.parametrize("header", [b"Content-Length: -1", b"Content-Length: 1e9", b"Content-Length: \xb2",
                                    b"Transfer-Encoding: chunked\r\n\r\n-5"])
def test_a_malformed_length_is_a_protocol_error(serve, header):
    with pytest.raises(ProtocolError):
        fetch(serve(b"HTTP/1.1 200 OK\r\n" + header + b"\r\n\r\n"))


def test_check_reports_an_oversized_api_answer_in_one_line(serve, tmp_path):
    server = serve(f"HTTP/1.1 200 OK\r\nContent-Length: {MAX_BODY * 4}\r\n\r\n".encode())
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    from tests.conftest import run_script

    done = run_script("check", "--namespace", "n", "--name", "web", timeout=30,
                      env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(kubeconfig)})
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Kubernetes API 127.0.0.1:"), done.stderr
    assert lines[0].endswith("the response body is larger than 64 MiB (Content-Length); refused")


# -- the release record: a gzip bomb -------------------------------------------------------

def _record(payload: bytes, driver: str = "secret") -> dict:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    helm_text = base64.b64encode(packer.compress(payload) + packer.flush())
    data = base64.b64encode(helm_text) if driver == "secret" else helm_text
    return {"metadata": {"name": "sh.helm.release.v1.bomb.v1"}, "data": {"release": data.decode()}}


@pytest.fixture(scope="module")
def bomb() -> dict:
    # 64 MiB and one byte of JSON whitespace: about 65 KiB compressed, the largest thing the
    # record may not inflate to.
    return _record(b"{}" + b" " * (MAX_RECORD - 1))


def test_a_release_record_inflating_past_64_mib_is_refused(bomb):
    with pytest.raises(ExternalError) as caught:
        decode(bomb, "secret")
    assert str(caught.value) == ("helm release record sh.helm.release.v1.bomb.v1: decompresses to more "
                                 "than 64 MiB; refused (a decompression bomb?)")


def test_a_record_within_the_limit_and_a_truncated_one(monkeypatch):
    record = {"name": "x", "info": {"status": "deployed"}, "config": {"a": "b" * 5000}}
    for driver in ("secret", "configmap"):
        assert decode(_record(json.dumps(record).encode(), driver), driver) == record
    monkeypatch.setattr(release_record, "MAX_RECORD", len(json.dumps(record)))
    assert decode(_record(json.dumps(record).encode()), "secret") == record  # exactly the limit
    monkeypatch.setattr(release_record, "MAX_RECORD", len(json.dumps(record)) - 1)
    with pytest.raises(ExternalError, match="decompresses to more than"):
        decode(_record(json.dumps(record).encode()), "secret")
    monkeypatch.undo()
    cut = _record(json.dumps(record).encode(), "configmap")
    cut["data"]["release"] = base64.b64encode(base64.b64decode(cut["data"]["release"])[:-20]).decode()
    with pytest.raises(ExternalError, match="cannot decode it .*truncated"):
        decode(cut, "configmap")


def test_check_refuses_a_planted_bomb_in_one_line(cluster, scripts, octopod_env, namespace, bomb):
    """A helm-labelled Secret anyone with write access to the namespace could plant."""
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
              "metadata": {"name": "sh.helm.release.v1.bomb.v1", "namespace": namespace,
                           "labels": {"owner": "helm", "name": "bomb", "status": "deployed", "version": "1"}},
              "data": bomb["data"]}
    made = subprocess.run([tool("kubectl"), "apply", "-f", "-"], input=json.dumps(secret), env=octopod_env,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    done = scripts("check", "--namespace", namespace, "--name", "bomb")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: helm release record sh.helm.release.v1.bomb.v1: decompresses to more than 64 MiB; "
        "refused (a decompression bomb?)")
