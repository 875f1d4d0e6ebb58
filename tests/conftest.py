"""Shared test setup: the server fixtures live in tests/servers.py."""

pytest_plugins = ["tests.servers"]
