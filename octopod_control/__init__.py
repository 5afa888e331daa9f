"""Octopod control scripts: the helpers behind the Invoke tasks in ``tasks.py``.

One concern a module: ``args`` (Octopod argv), ``settings`` (configuration),
``values`` (helm values), ``process`` (bounded child processes), ``helm``,
``kube`` (API reads), ``readiness`` (one module a kind), ``registry``,
``remote`` (SSH), ``wrappers`` (scripts/), and ``actions/`` (one file an operation).
"""
