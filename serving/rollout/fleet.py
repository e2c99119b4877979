"""A fleet of model-server replicas addressed as one: `H1:P1,H2:P2,...` or a DNS name that resolves to every pod
(a headless Service: every A/AAAA record becomes one replica), and the check that every replica serves what a model
config file says (versions AVAILABLE, labels resolving to their versions), naming the replicas that do not."""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence

from serving.client import ServingClient, ServingClientError


def resolve_servers(spec: str) -> list[str]:
    """`H1:P1,H2:P2` → those targets; a single `name:port` whose name resolves to several addresses → one target per
    address (sorted, deduplicated). Raises ValueError naming the entry that is not HOST:PORT or does not resolve."""
    entries = [s.strip() for s in spec.split(",") if s.strip()]
    if not entries:
        raise ValueError("--server names no replica (expected HOST:PORT[,HOST:PORT...])")
    if len(entries) > 1:
        for entry in entries:
            _split(entry)
        return entries
    host, port = _split(entries[0])
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ValueError(f"--server {entries[0]}: {host} does not resolve ({e.strerror})") from None
    addresses = sorted({info[4][0] for info in infos})
    if len(addresses) <= 1:
        return entries
    return [f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addresses]


def _split(entry: str) -> tuple[str, int]:
    host, sep, port = entry.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--server entry {entry!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def replica_lag(client: ServingClient, model: str, versions: set[int], labels: dict[str, int]) -> str | None:
    """None when `client`'s server has every version of `versions` AVAILABLE and every label resolving to its
    version; otherwise what is missing (one line)."""
    try:
        states = {s.version: s for s in client.status(model, timeout=5.0)}
    except ServingClientError as e:
        return f"unreachable or no model ({e.code.name}: {e.details})"
    for v in sorted(versions):
        s = states.get(v)
        if s is None or s.state != "AVAILABLE":
            state = "not loaded" if s is None else s.state
            error = f" ({s.error_code}: {s.error_message})" if s is not None and s.error_code != "OK" else ""
            return f"version {v} {state}{error}"
    for label, v in sorted(labels.items()):
        try:
            got = client.metadata(model=model, label=label, timeout=5.0).version
        except ServingClientError as e:
            return f"label {label} not served ({e.code.name})"
        if got != v:
            return f"label {label} → {got}, expected {v}"
    return None


def failed_load(client: ServingClient, model: str, version: int) -> str | None:
    """The error of `version` on this replica when it ended with one (a load that failed), else None."""
    try:
        states = client.status(model, timeout=5.0)
    except ServingClientError:
        return None
    for s in states:
        if s.version == version and s.state == "END" and s.error_code != "OK":
            return f"{s.error_code}: {s.error_message}"
    return None


def wait_converged(clients: Sequence[ServingClient], model: str, versions: set[int], labels: dict[str, int],
                   timeout: float, poll_s: float = 0.2, fail_version: int | None = None) -> dict[str, str]:
    """Poll every replica until each serves `versions`/`labels`; return {target: what lags} for the stragglers left
    at `timeout` ({} = converged). With `fail_version`, return at once when a replica reports that version failed to
    load ({target: 'failed: ...'})."""
    deadline = time.monotonic() + timeout
    pending = {c.target: c for c in clients}
    lag: dict[str, str] = {}
    while True:
        for target, client in list(pending.items()):
            if fail_version is not None:
                error = failed_load(client, model, fail_version)
                if error:
                    return {target: f"failed to load version {fail_version}: {error}"}
            why = replica_lag(client, model, versions, labels)
            if why is None:
                pending.pop(target)
                lag.pop(target, None)
            else:
                lag[target] = why
        if not pending or time.monotonic() >= deadline:
            return lag
        time.sleep(poll_s)
