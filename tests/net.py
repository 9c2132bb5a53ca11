"""Loopback helpers shared by the tests that run servers."""

import socket


def free_port() -> int:
    """A loopback port nothing listens on now: bound, then released (another process could take it, rarely)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
