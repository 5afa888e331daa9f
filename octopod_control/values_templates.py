"""VALUES_TEMPLATES: values files rendered per deployment, between VALUES_FILES and the overrides.

A template is a YAML values file whose string values may hold `{name}`, `{namespace}`,
`{project_name}`, `{base_domain}` and `{tag}`. Only string scalars are rendered, found on the
parsed document (never by searching the text): the YAML structure is the file's and nothing of
a deployment's values can add to it. A rendered value replaces its scalar as a double-quoted
string, so it stays a string whatever it reads like (`no`, `1e3`, `null`); in a block scalar
(`|`, `>`) the values go into its literal text. Every other byte of the file is kept, so helm
reads the rest exactly as it reads the file itself (go-yaml's `y` and `on`, dates, octals), and
the result is checked: parsed, it equals the parsed file with its strings rendered.
`{{ ... }}` (helm's template syntax, for charts that pass values through `tpl`) is left alone;
any other `{word}` is an unknown placeholder: exit 78 naming it, its file and its line. So is an
unreadable file.

The rendered documents go to helm as `--values` files in a private temporary directory,
removed when helm is done.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Mapping

from .errors import ConfigError
from .log import warn
from .settings import PROJECT_ROOT, TEMPLATE_FIELDS

# `{word}` not inside `{{ ... }}`: a placeholder (known or not).
PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_MAX_BYTES = 4 * 1024 * 1024


def locate(path: str) -> Path:
    """Absolute, or relative to the current directory, else to the project root (as CHART)."""
    candidate = Path(os.path.expanduser(path))
    if candidate.is_absolute() or candidate.exists():
        return candidate
    rooted = PROJECT_ROOT / candidate
    return rooted if rooted.exists() else candidate


def render_all(paths: list[str], fields: Mapping[str, str]) -> list[tuple[str, str]]:
    """(the template as configured, its rendered YAML) for each of VALUES_TEMPLATES, in order;
    a ConfigError (78) for the first file that cannot be read or rendered."""
    return [(path, render_file(path, fields)) for path in paths]


def render_file(path: str, fields: Mapping[str, str]) -> str:
    where = f"VALUES_TEMPLATES: {path}"
    try:
        with open(locate(path), "rb") as handle:
            data = handle.read(_MAX_BYTES + 1)
        if len(data) > _MAX_BYTES:
            raise ConfigError(f"{where}: larger than {_MAX_BYTES // (1024 * 1024)} MiB")
        text = data.decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    return render_text(text, fields, where)


def render_text(text: str, fields: Mapping[str, str], where: str) -> str:
    """The template with each placeholder-holding string value rendered; every other byte of the
    file as it was, so helm reads the rest exactly as it would read the file itself."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid"
        lines = text.splitlines()
        near = " ".join(lines[max(mark.line - 1, 0):mark.line + 1]) if mark is not None else ""
        hint = "; a value starting with '{' must be quoted" if PLACEHOLDER.search(near) else ""
        raise ConfigError(f"{where}: not valid YAML{at} ({problem}{hint})") from None
    if root is None:
        return ""
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{where}: the top level must be a mapping of values")
    renderer = _Renderer(fields, where)
    nodes = renderer.string_nodes(root)
    if not nodes:
        return text
    # Each scalar's own text (without its anchor or tag), by where it ends.
    spans = {token.end_mark.index: token.start_mark.index
             for token in yaml.scan(text, Loader=yaml.SafeLoader) if isinstance(token, yaml.ScalarToken)}
    edits = []
    for node in nodes:
        end = node.end_mark.index
        start = spans[end]
        if node.style in ("|", ">"):
            # A block scalar's content is literal text: the values go in as they are (they hold no
            # line break: every field is printable); the header line (`|-  # comment`) is kept.
            head, newline, body = text[start:end].partition("\n")
            edits.append((start, end, head + newline + renderer.render(body, node)))
        else:
            edits.append((start, end, _double_quoted(renderer.render(node.value, node))))
    out = text
    for start, end, replacement in sorted(edits, reverse=True):
        out = out[:start] + replacement + out[end:]
    # What was rendered is what substituting into the parsed file gives: nothing else changed.
    if yaml.safe_load(out) != renderer.substituted(yaml.safe_load(text)):
        raise ConfigError(f"{where}: cannot be rendered without changing its structure "
                          "(a placeholder in an unusual YAML construct?)")
    return out


_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def _double_quoted(value: str) -> str:
    """A YAML double-quoted scalar: a JSON string, with what YAML would fold or refuse escaped."""
    import json

    quoted = json.dumps(value, ensure_ascii=False)
    return _YAML_UNSAFE.sub(lambda m: "\\u%04x" % ord(m.group()), quoted)


class _Renderer:
    def __init__(self, fields: Mapping[str, str], where: str) -> None:
        self.fields = {f: fields.get(f, "") for f in TEMPLATE_FIELDS}
        self.where = where
        self.warned: set[str] = set()

    def string_nodes(self, root) -> list:
        """The string scalars holding a placeholder (each once, aliases or not); the document
        checked for placeholders where they cannot go."""
        import yaml

        found, seen, stack = [], set(), [root]
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, yaml.MappingNode):
                self._unquoted_placeholder(node)
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode) and PLACEHOLDER.search(key.value):
                        raise ConfigError(f"{self.where}: line {key.start_mark.line + 1}: a key holds "
                                          f"{{{PLACEHOLDER.search(key.value).group(1)}}}; placeholders "
                                          "are rendered in string values only")
                    stack.append(value)
            elif isinstance(node, yaml.SequenceNode):
                self._unquoted_placeholder(node)
                stack.extend(node.value)
            elif node.tag == _STR and PLACEHOLDER.search(node.value):
                self.render(node.value, node)  # an unknown placeholder fails here, before any edit
                found.append(node)
        return found

    def render(self, text: str, node) -> str:
        return PLACEHOLDER.sub(lambda m: self._field(m.group(1), node), text)

    def substituted(self, value):
        """A parsed document with its string values rendered (the check on render_text)."""
        if isinstance(value, dict):
            return {k: self.substituted(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.substituted(v) for v in value]
        if isinstance(value, str):
            return PLACEHOLDER.sub(lambda m: self.fields[m.group(1)], value)
        return value

    def _field(self, name: str, node) -> str:
        if name not in self.fields:
            allowed = ", ".join("{%s}" % f for f in TEMPLATE_FIELDS)
            raise ConfigError(f"{self.where}: line {node.start_mark.line + 1}: unknown placeholder "
                              f"{{{name}}}; use {allowed}")
        if not self.fields[name] and name not in self.warned:
            self.warned.add(name)
            warn(f"{self.where}: {{{name}}} has no value here; rendered empty")
        return self.fields[name]

    def _unquoted_placeholder(self, node) -> None:
        """`host: {name}` unquoted is YAML for the map {name: null}: say so rather than send it."""
        import yaml

        if not (isinstance(node, yaml.MappingNode) and node.flow_style and len(node.value) == 1):
            return
        key, value = node.value[0]
        if (isinstance(key, yaml.ScalarNode) and key.style is None
                and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.value)
                and isinstance(value, yaml.ScalarNode) and value.tag == _NULL and value.value == ""):
            raise ConfigError(f"{self.where}: line {node.start_mark.line + 1}: {{{key.value}}} "
                              "unquoted is a YAML mapping, not a placeholder; quote the value "
                              f"(\"{{{key.value}}}...\")")


@contextlib.contextmanager
def written(rendered: list[tuple[str, str]]) -> Iterator[list[str]]:
    """The rendered documents as files for helm's --values, in a private temporary directory
    removed afterwards."""
    if not rendered:
        yield []
        return
    directory = tempfile.mkdtemp(prefix="octopod-values-")  # 0700
    try:
        paths = []
        for number, (_, text) in enumerate(rendered):
            path = os.path.join(directory, f"{number:02d}.yaml")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            paths.append(path)
        yield paths
    finally:
        shutil.rmtree(directory, ignore_errors=True)
