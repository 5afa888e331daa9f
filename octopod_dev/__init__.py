"""Development tooling: what builds, documents and tests the product, never shipped in it.

octopod_control (the product) never imports this package; tests/test_layout.py holds that.
"""
