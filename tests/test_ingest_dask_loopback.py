"""`dcgan ingest --runner dask` starts its local Dask cluster (scheduler, dashboard, workers, nannies) on the
loopback interface only, like every server of the project."""

from __future__ import annotations

import psutil

from components.ingest.cli import local_dask_cluster


def _listening(process: psutil.Process) -> list[tuple[int, str, int]]:
    found = []
    for p in [process] + process.children(recursive=True):
        for conn in p.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                found.append((p.pid, conn.laddr.ip, conn.laddr.port))
    return found


def test_the_local_dask_cluster_listens_on_loopback_only():
    # only the sockets the cluster opened: a server an earlier test left listening in this process is not the
    # cluster's (seen on the current stack's lane: one on [::] in the pytest process, there before the cluster)
    before = set(_listening(psutil.Process()))
    with local_dask_cluster(workers=1) as cluster:
        sockets = [s for s in _listening(psutil.Process()) if s not in before]
        dashboard_port = int(cluster.dashboard_link.split(":")[2].split("/")[0])
        scheduler_port = int(cluster.scheduler_address.rsplit(":", 1)[1])
        ports = {port for _, _, port in sockets}
        assert {dashboard_port, scheduler_port} <= ports, (cluster.dashboard_link, sockets)
        exposed = [s for s in sockets if s[1] != "127.0.0.1"]
        assert not exposed, f"listening beyond loopback (pid, ip, port): {exposed}"
