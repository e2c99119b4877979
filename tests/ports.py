"""Free loopback ports for the tests' servers."""

from __future__ import annotations

import random
import socket


def _ephemeral_ports() -> range:
    """The kernel's range for the local side of outgoing connections (and for binds to port 0)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = map(int, f.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, from outside the kernel's ephemeral range. A port from that range (what
    a bind to port 0 returns) can be taken by any outgoing connection (an S3 client, a gRPC channel, the browser)
    between this call and the server's own bind, which then fails with "address already in use" (seen under
    xdist). Outside it only another explicit bind can take it: a random one of ~20,000 ports, checked free here."""
    ephemeral = _ephemeral_ports()
    candidates = [p for p in range(10000, 65536) if p not in ephemeral]
    rng = random.SystemRandom()
    for _ in range(100 if candidates else 0):
        port = rng.choice(candidates)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # every port is ephemeral here: the kernel's pick
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
