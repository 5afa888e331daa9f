"""Entry point of the bundled executable (dist/utils/octopod-control), and its hygiene.

The bundle boots as scripts/ do, through `program.main` (`OctopodProgram` over
`octopod_control.tasks.ns`), with the task name as the first argument
(`octopod-control check --name x ...`); `main` here only cleans the environment first.
Inside Octopod's image there is no Python, no FHS loader, maybe no writable /tmp
and no /etc/passwd entry for uid 1000; this module makes the frozen program
indifferent to all of that, and keeps the bundle's own plumbing (loader paths,
PyInstaller's and the launcher's variables) out of the environment of helm,
kubectl and ssh.
"""
from __future__ import annotations

import os
import sys
from typing import Mapping

# Set by PyInstaller's bootloader or by our launcher (bundle/launcher.c) for the
# frozen program itself; a child must never inherit them.
_PLUMBING_PREFIXES = ("_PYI_", "_MEIPASS", "OCTOPOD_BUNDLE_", "STATICX_", "_OCTOPOD_WARM_")
# Set only when the launcher starts this program as the warm command server (warm.SERVER_VARIABLE).
_WARM_SERVER = "_OCTOPOD_WARM_SERVER"
_PLUMBING_NAMES = ("LD_LIBRARY_PATH_ORIG", "PYTHONHOME", "PYTHONPATH")

# CA bundles by distribution; Octopod's Nix image has the last one, Debian-built OpenSSL
# looks for the first. Only consulted when SSL_CERT_FILE is unset.
_CA_FILES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
             "/etc/ssl/cert.pem", "/etc/ssl/certs/ca-bundle.crt")


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def child_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """environ without the bundle's plumbing; the identity outside the bundle.

    PyInstaller saves a caller's LD_LIBRARY_PATH as LD_LIBRARY_PATH_ORIG when it
    replaces it: the caller's value is restored, one naming the bundle dropped. (Our
    launcher passes the library path to the loader, not through the environment.)
    """
    env = dict(environ)
    if not is_frozen():
        return env
    original = env.get("LD_LIBRARY_PATH_ORIG")
    bundled = getattr(sys, "_MEIPASS", None) or os.path.dirname(sys.executable)
    if original:
        env["LD_LIBRARY_PATH"] = original
    elif bundled in env.get("LD_LIBRARY_PATH", ""):
        del env["LD_LIBRARY_PATH"]
    for name in list(env):
        if name.startswith(_PLUMBING_PREFIXES) or name in _PLUMBING_NAMES:
            del env[name]
    return env


def _usable_dir(path: str) -> bool:
    return bool(path) and os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def ensure_tmpdir(environ: dict[str, str]) -> None:
    """Point TMPDIR at a writable directory when neither $TMPDIR nor /tmp is one.

    create writes its values file into a private temp dir; Python's own fallback
    list ends at the working directory, which in Octopod may be read-only too.
    """
    if _usable_dir(environ.get("TMPDIR", "")) or _usable_dir("/tmp"):
        return
    for base in (environ.get("XDG_CACHE_HOME", ""), os.path.join(environ.get("HOME", ""), ".cache")):
        if not base or not os.path.isabs(base):
            continue
        candidate = os.path.join(base, "octopod-control", "tmp")
        try:
            os.makedirs(candidate, mode=0o700, exist_ok=True)
        except OSError:
            continue
        if _usable_dir(candidate):
            environ["TMPDIR"] = candidate
            return


def ensure_ca_file(environ: dict[str, str]) -> None:
    """Tell the bundled OpenSSL where this image keeps its CA bundle (registry calls)."""
    if environ.get("SSL_CERT_FILE") or os.path.exists(_CA_FILES[0]):
        return
    for path in _CA_FILES[1:]:
        if os.path.exists(path):
            environ["SSL_CERT_FILE"] = path
            return


def prepare() -> None:
    """Clean and complete os.environ before anything reads it (Settings, subprocess)."""
    clean = child_environ(os.environ)
    ensure_tmpdir(clean)
    ensure_ca_file(clean)
    os.environ.clear()
    os.environ.update(clean)


def main() -> None:
    if os.environ.get(_WARM_SERVER):  # the launcher started us as the warm server (docs/warm.md)
        from .warm import serve

        serve()
    prepare()
    from .program import main as run

    run()
