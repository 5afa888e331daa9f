"""env/defaults.env and README's configuration table, generated from the schema (config.py).

`invoke config-docs` writes both; tests/test_config.py fails when either differs from what
this module renders, so the schema stays the one place a variable is described.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

from octopod_control.config import VARIABLES, Var, sections

BEGIN, END = "<!-- config-table:begin -->", "<!-- config-table:end -->"
_HEADER = """\
# Octopod control scripts: every configuration variable with its default.
# Generated from octopod_control/config.py by `invoke config-docs`: edit the schema, not this file.
# Precedence (later wins): this file < env/$OCTOPOD_ENV.env < .env < process environment.
# Octopod passes its ConfigMap as the process environment, so that always wins.
# Templates take {name}, {namespace}, {project_name}, {base_domain}, {tag}.
"""


def _plain(markdown: str) -> str:
    return markdown.replace("`", "")


def defaults_env() -> str:
    """The text of env/defaults.env: every variable the env files may set, by section."""
    out = [_HEADER]
    for title, variables in sections():
        kept = [v for v in variables if not v.environment_only]
        if not kept:
            continue
        out.append(f"\n# --- {title}\n")
        for var in kept:
            note = _plain(var.doc[:1].upper() + var.doc[1:])
            if var.empty:
                note += f". Empty: {_plain(var.empty)}"
            note += f". E.g. {_plain(var.example)}" if var.example else ""
            out += [f"# {line}\n" for line in textwrap.wrap(note, 96, break_on_hyphens=False)]
            out.append(f"{var.name}={var.default}\n")
    return "".join(out)


def _default_cell(var: Var) -> str:
    if var.default:
        return f"`{var.default}`"
    return f"(empty: {var.empty})" if var.empty else "(empty)"


def _example_cell(var: Var) -> str:
    example = var.example
    if not example or "`" in example or example.startswith(("a ", "an ", "output ")):
        return example
    return f"`{example}`"


def readme_table() -> str:
    """README's configuration table (between its markers)."""
    rows = ["| variable | default | example | meaning |", "|---|---|---|---|"]
    rows += [f"| `{v.name}` | {_default_cell(v)} | {_example_cell(v)} | {v.doc} |" for v in VARIABLES]
    return "\n".join(rows)


def readme_with_table(readme: str) -> str:
    """README's text with the generated table between the markers."""
    head, found, rest = readme.partition(BEGIN)
    _, found_end, tail = rest.partition(END)
    if not found or not found_end:
        raise ValueError(f"README.md has no {BEGIN} ... {END} markers")
    return f"{head}{BEGIN}\n{readme_table()}\n{END}{tail}"


def write(root: Path) -> list[str]:
    """Regenerate both files under root; returns the ones that changed."""
    changed = []
    for path, text in ((root / "env" / "defaults.env", defaults_env()),
                       (root / "README.md", readme_with_table((root / "README.md").read_text()))):
        if path.read_text() != text:
            path.write_text(text)
            changed.append(str(path.relative_to(root)))
    return changed
