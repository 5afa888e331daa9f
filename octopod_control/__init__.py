"""Octopod control scripts, the product: ``tasks`` (the Invoke tasks), ``program`` (how they
boot, from scripts/ and the bundle), and the helpers behind them.

One concern a module: ``args`` (Octopod argv), ``settings`` (configuration),
``values`` (helm values), ``process`` (bounded child processes), ``helm``,
``kube`` (API reads), ``kinds/`` (one module a workload kind: readiness, archive,
restore, archive_check), ``manifest`` (a release's rendered manifest), ``restoring``
(create's restore step), ``locks``, ``http1`` (the HTTP client), ``registry``, ``remote``
(SSH), ``remote_plan`` (remote cleanup, planned then run), and ``actions/`` (one file an operation; none imports another).

Nothing here imports ``tests`` or the development package ``octopod_dev``
(tests/test_layout.py).
"""
