"""Serving fixtures live in serve_fixtures.py (importable by name from the tests; 'conftest' is not unique)."""

from serve_fixtures import server, stored  # noqa: F401
