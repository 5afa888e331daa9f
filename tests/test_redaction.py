"""Redaction: every form a secret takes in tools' output, over the whole stream, live.

The Go quoting functions are checked against examples worked out from Go's strconv
and encoding/json rules, then against real helm (Go's own %q, %+q and json.Marshal).
"""
from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
import threading

import pytest
import yaml

from octopod_control import process
from octopod_control.process import Redactor, go_json, go_quote, secret_forms
from octopod_control.values import dump_values
from tests.conftest import ROOT, tool

# (text, strconv.Quote, strconv.QuoteToASCII), without the surrounding quotes.
GO_QUOTE = [
    # Go's ExampleQuote / ExampleQuoteToASCII
    ("\"Fran & Freddie's Diner\t\u263a\"", "\\\"Fran & Freddie's Diner\\t\u263a\\\"",
     "\\\"Fran & Freddie's Diner\\t\\u263a\\\""),
    ("\a\b\f\n\r\t\v", "\\a\\b\\f\\n\\r\\t\\v", "\\a\\b\\f\\n\\r\\t\\v"),  # the short escapes
    ("\x00\x1b\x7f", "\\x00\\x1b\\x7f", "\\x00\\x1b\\x7f"),  # other C0 bytes and DEL: \x
    ("back\\slash 'single'", "back\\\\slash 'single'", "back\\\\slash 'single'"),
    ("caf\u00e9", "caf\u00e9", "caf\\u00e9"),  # printable non-ASCII: kept unless ASCII-only
    ("\u00a0", "\\u00a0", "\\u00a0"),  # NO-BREAK SPACE: a separator, not printable
    ("\x85", "\\u0085", "\\u0085"),  # C1 control: \u, not \x (it is a rune, not a byte)
    ("\u200b", "\\u200b", "\\u200b"),  # ZERO WIDTH SPACE: format (Cf)
    ("\u2028", "\\u2028", "\\u2028"),  # LINE SEPARATOR
    ("\U0001f419", "\U0001f419", "\\U0001f419"),  # octopus: printable, beyond the BMP
    ("\U000e0001", "\\U000e0001", "\\U000e0001"),  # LANGUAGE TAG: Cf beyond the BMP
]

# (text, json.Marshal, an Encoder with SetEscapeHTML(false)), without the quotes.
GO_JSON = [
    ("<html>&amp;", "\\u003chtml\\u003e\\u0026amp;", "<html>&amp;"),
    ("\b\f\n\r\t", "\\b\\f\\n\\r\\t", "\\b\\f\\n\\r\\t"),
    ("\x00\x1f\x7f", "\\u0000\\u001f\x7f", "\\u0000\\u001f\x7f"),  # DEL is not escaped
    ("\"\\", "\\\"\\\\", "\\\"\\\\"),
    ("\u2028\u2029", "\\u2028\\u2029", "\\u2028\\u2029"),  # escaped even without HTML escaping
    ("caf\u00e9 \U0001f419", "caf\u00e9 \U0001f419", "caf\u00e9 \U0001f419"),
]


@pytest.mark.parametrize("text, quoted, ascii_quoted", GO_QUOTE)
def test_go_quote_follows_strconv(text, quoted, ascii_quoted):
    assert go_quote(text) == quoted
    assert go_quote(text, ascii_only=True) == ascii_quoted


@pytest.mark.parametrize("text, marshalled, plain", GO_JSON)
def test_go_json_follows_encoding_json(text, marshalled, plain):
    assert go_json(text) == marshalled
    assert go_json(text, escape_html=False) == plain


def test_go_quoting_matches_real_helm(tmp_path):
    """helm's printf and toJson are Go's fmt %q / %+q and json.Marshal: ours must agree byte for byte."""
    corpus = [t for t, _, _ in GO_QUOTE + GO_JSON] + ["s3cr3t<&>'\"\\\n\u00e9\U0001f419\x01"]
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: quoting\nversion: 0.1.0\n")
    (chart / "templates" / "out.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: out\ndata:\n"
        "{{- range $i, $v := .Values.corpus }}\n"
        "  q{{ $i }}: {{ printf \"%q\" $v | b64enc | quote }}\n"
        "  a{{ $i }}: {{ printf \"%+q\" $v | b64enc | quote }}\n"
        "  j{{ $i }}: {{ toJson $v | b64enc | quote }}\n"
        "{{- end }}\n")
    values = tmp_path / "values.json"
    values.write_text(dump_values({"corpus": corpus}))
    done = subprocess.run([tool("helm4"), "template", "t", str(chart), "-f", str(values)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    data = {k: base64.b64decode(v).decode("utf-8") for k, v in yaml.safe_load(done.stdout)["data"].items()}
    for i, text in enumerate(corpus):
        assert data[f"q{i}"] == f'"{go_quote(text)}"', text
        assert data[f"a{i}"] == f'"{go_quote(text, ascii_only=True)}"', text
        assert data[f"j{i}"] == f'"{go_json(text)}"', text


SECRET = 'pa$$ "w<o>rd" & caf\u00e9\n\tline two \U0001f419'


def _every_form(secret: str) -> list[str]:
    raw = secret.encode()
    b64 = [base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()]
    return [secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
            go_json(secret), go_json(secret, escape_html=False), go_quote(secret),
            go_quote(secret, ascii_only=True), go_quote(go_json(secret)), go_json(go_quote(secret)),
            *b64, *(b.rstrip("=") for b in b64)]


@pytest.mark.parametrize("form", range(len(_every_form(SECRET))))
def test_every_form_of_a_secret_is_redacted(form):
    shown = _every_form(SECRET)[form]
    assert shown in secret_forms(SECRET)
    assert Redactor([SECRET])(f"Error: value {shown!s} is invalid\n") == "Error: value *** is invalid\n"


def test_base64_forms_cover_every_alignment_of_padding():
    for secret in ("abc", "abcd", "abcde", "\xff\xfe\xfd?>"):  # 0, 2 and 1 padding characters; + and /
        b64 = base64.b64encode(secret.encode()).decode()
        url = base64.urlsafe_b64encode(secret.encode()).decode()
        for shown in {b64, b64.rstrip("="), url, url.rstrip("=")}:
            assert Redactor([secret])(f"password: {shown}\n") == "password: ***\n", (secret, shown)


def test_short_values_are_not_redacted():
    redact = Redactor(["on", "1", "", "xyz"])
    assert redact("on 1 xyz eHl6") == "on 1 *** ***"


def test_the_longest_form_wins_where_secrets_overlap():
    assert Redactor(["secret", "secret-and-more"])("a secret-and-more b secret") == "a *** b ***"


def test_a_multi_line_secret_is_redacted_whole():
    key = "-----BEGIN KEY-----\nMIIabc\n-----END KEY-----"
    assert Redactor([key])(f"Error: bad key:\n{key}\ndone\n") == "Error: bad key:\n***\ndone\n"


def test_the_stream_holds_back_only_what_may_begin_a_secret():
    stream = Redactor(["hunter2-long"]).stream()
    assert stream.feed(b"Installing it now.\n") == "Installing it now.\n"  # nothing held
    assert stream.feed(b"password is hunt") == "password is "  # "hunt" may begin it
    assert stream.feed(b"er2-lo") == ""
    assert stream.feed(b"ng, hunter") == "***, "
    assert stream.feed(b"1\n") == "hunter1\n"
    assert stream.feed("caf\u00e9".encode()[:4]) == "caf"  # half a character waits for the rest
    assert stream.finish() == "\ufffd"  # a cut-off character ends as a replacement


@pytest.mark.parametrize("secrets", [
    ["alpha-beta", "beta-gamma", "a\nmulti\nline", "x<y&z", "aaa", "aaaa-b"],
    ["p" * 40 + "q", "p" * 40 + "r" * 20, "p" * 35, "pq" * 30],  # longer than the head the search compiles
])
def test_streamed_redaction_equals_whole_text_redaction(secrets):
    redact = Redactor(secrets)
    rng = random.Random(11)
    pieces = secrets + [go_json(s) for s in secrets] + ["alpha", "beta", "gamma", "a", "\n", " ", "aaaa",
                                                         "p" * 20, "q", "r" * 5]
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 30)))
        data = text.encode()
        stream, out, at = redact.stream(), [], 0
        while at < len(data):
            step = rng.randint(1, 12)
            out.append(stream.feed(data[at:at + step]))
            at += step
        out.append(stream.finish())
        assert "".join(out) == redact(text), text


def test_a_secret_split_across_writes_and_lines_is_redacted(capsys):
    secret = "first line\nsecond line"
    child = ("import sys, time\n"
             "for part in ['before fir', 'st line\\nsec', 'ond line after\\n']:\n"
             "    sys.stdout.write(part); sys.stdout.flush(); time.sleep(0.2)\n")
    done = process.run([sys.executable, "-c", child], timeout=30, secrets=[secret], echo=True)
    assert done.output == "before *** after\n"
    assert capsys.readouterr().err == "before *** after\n"


def test_output_is_passed_on_while_the_command_runs(tmp_path, monkeypatch):
    """A line that cannot begin a secret reaches our stderr before the command goes on."""
    seen, first = [], threading.Event()

    class Recorder:
        def write(self, text: str) -> None:
            seen.append(text)
            if "waiting" in "".join(seen):
                first.set()

        def flush(self) -> None:
            pass

    monkeypatch.setattr(sys, "stderr", Recorder())
    go_on = tmp_path / "go-on"
    script = f"echo waiting; while [ ! -e {go_on} ]; do sleep 0.05; done; echo done"
    runner = threading.Thread(target=process.run, args=(["sh", "-c", script],),
                              kwargs=dict(timeout=30, secrets=["hunter2"], echo=True))
    runner.start()
    try:
        assert first.wait(10), "nothing printed while the command ran"
    finally:
        go_on.touch()
        runner.join(30)
    assert "".join(seen) == "waiting\ndone\n"


# -- end to end: a chart that fails, echoing the values -------------------------------------

FAILING_CHART = ROOT / "tests" / "charts" / "failing"


def test_helm_failing_with_the_values_in_its_message_prints_none_of_them(scripts, namespace):
    plain = f"s3cr3t-{namespace}"
    multiline = f"first-{namespace}\nsecond-{namespace}"
    markup = f"<b>{namespace}</b> & co"
    done = scripts("create", "--project-name", "demo", "--base-domain", "staging.example.com",
                   "--namespace", namespace, "--name", "leaky", "--tag", "v1",
                   "--app-env-override", f"PLAIN={plain}", "--app-env-override", f"MULTI={multiline}",
                   "--app-env-override", f"MARKUP={markup}", env={"CHART": str(FAILING_CHART)})
    assert done.returncode == 1, done.stderr
    assert "refusing to render" in done.stderr and "***" in done.stderr
    assert "helm upgrade --install leaky: failed" in done.stderr
    shown = done.stdout + done.stderr
    for value in (plain, multiline, markup):
        for form in _every_form(value):
            assert form not in shown, (form, done.stderr)
    for fragment in (f"first-{namespace}", f"second-{namespace}", f"<b>{namespace}", f"{namespace}</b>"):
        assert fragment not in shown, (fragment, done.stderr)  # no line of a value on its own either


def test_a_secret_in_a_message_cut_short_or_with_its_whitespace_collapsed_is_redacted():
    """Summaries (kinds/, the rollout's diagnosis) collapse whitespace and cut long messages with
    '…': the part of a secret before the cut, and a collapsed secret, are secrets still."""
    from octopod_control.process import Redactor

    redact = Redactor(["hunter2-the-secret", "multi  space\nsecret"])
    assert redact("bad value xxx hunter2-…") == "bad value xxx ***…"
    assert redact("bad value multi space secret here") == "bad value *** here"
    assert redact("an ordinary message cut short…") == "an ordinary message cut short…"
