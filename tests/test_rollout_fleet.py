"""Fleet rollouts: three in-process replicas on loopback poll one model config file; `Rollout` with several clients
(push=False) writes the file and waits until every replica serves the new labels/versions, naming stragglers.
Bad input: a version not on the store, two rollouts at once, a hand-edited invalid file, a canary that one replica
cannot load (the file is reverted and that replica named)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time

import pytest
from serving_helpers import MODEL, add_version, running_server, wait_for, write_config

pytestmark = pytest.mark.stack_neutral  # make test-current skips it (docs/development.md)

POLL_S = 0.3


@pytest.fixture
def fleet(tmp_path, tiny_saved_model):
    """Three replicas polling one config file that names one base path (a shared volume)."""
    base = str(tmp_path / "models" / MODEL)
    add_version(tiny_saved_model, base, 1)
    add_version(tiny_saved_model, base, 2)
    path = write_config(str(tmp_path / "models.config"), [{"name": MODEL, "base_path": base}])
    polling = {"model_config_file": path, "model_config_file_poll_wait_seconds": POLL_S,
               "file_system_poll_wait_seconds": POLL_S}
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(running_server(**polling)) for _ in range(3)]
        yield path, base, servers


def _clients(servers):
    from serving.client import ServingClient

    return [ServingClient(s.grpc_target, timeout=10.0) for s in servers]


def test_canary_promote_rollback_move_every_replica(fleet, tiny_saved_model):
    from serving.rollout.fleet import replica_lag
    from serving.rollout.labels import Rollout

    path, base, servers = fleet
    clients = _clients(servers)
    rollout = Rollout(path, clients, wait_timeout_s=60, push=False)
    status = rollout.canary(1)
    assert status.labels == {"stable": 2, "canary": 1}
    assert set(status.replicas.values()) == {"ok"}
    for c in clients:
        assert replica_lag(c, MODEL, {1, 2}, {"stable": 2, "canary": 1}) is None
        assert c.metadata(model=MODEL, label="canary").version == 1
    status = rollout.promote()
    assert status.labels == {"stable": 1, "previous": 2}
    assert all(c.metadata(model=MODEL, label="stable").version == 1 for c in clients)
    status = rollout.rollback()
    assert status.labels == {"stable": 2}
    assert all(c.metadata(model=MODEL, label="stable").version == 2 for c in clients)
    for c in clients:
        c.close()


def test_stopped_replica_is_named_and_converges_after_restart(fleet):
    from serving.client import ServingClient
    from serving.rollout.labels import Rollout, RolloutError

    path, base, servers = fleet
    stopped = servers[2]
    target = stopped.grpc_target
    stopped.stop(grace=0)
    clients = _clients(servers[:2]) + [ServingClient(target, timeout=2.0, retries=1)]
    rollout = Rollout(path, clients, wait_timeout_s=3, push=False)
    with pytest.raises(RolloutError, match=rf"not become AVAILABLE on every replica.*{re.escape(target)}: unreachable"):
        rollout.canary(1)  # step 1 times out on the stopped replica: reverted, nothing labelled
    assert "canary" not in open(path).read()
    # Restart it on the same port: it reads the config itself and the rollout converges on all three.
    host, port = target.rsplit(":", 1)
    with running_server(model_config_file=path, model_config_file_poll_wait_seconds=POLL_S, port=int(port)):
        rollout = Rollout(path, clients, wait_timeout_s=60, push=False)
        assert rollout.canary(1).labels == {"stable": 2, "canary": 1}
        assert set(rollout.status().replicas.values()) == {"ok"}
    for c in clients:
        c.close()


def test_bad_input_is_refused_and_every_replica_keeps_serving(fleet, tiny_saved_model):
    from serving.rollout.labels import Rollout, RolloutError

    path, base, servers = fleet
    clients = _clients(servers)
    rollout = Rollout(path, clients, wait_timeout_s=30, push=False)
    before = open(path).read()
    with pytest.raises(RolloutError, match="no version 9"):
        rollout.canary(9)
    assert open(path).read() == before
    # Two rollouts at once: the second is refused while the first holds the lock.
    folder, name = os.path.split(path)
    with open(os.path.join(folder, f".{name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(RolloutError, match="another rollout"):
            rollout.canary(1)
        fcntl.flock(lock, fcntl.LOCK_UN)
    assert open(path).read() == before
    # A canary that cannot load: the file is reverted and the failure named.
    v3 = os.path.join(base, "3")
    os.makedirs(os.path.join(v3, "variables"))
    with open(os.path.join(v3, "saved_model.pb"), "wb") as f:
        f.write(b"not a SavedModel")
    with pytest.raises(RolloutError, match=r"failed to load version 3") as info:
        rollout.canary(3)
    assert any(s.grpc_target in str(info.value) for s in servers)
    assert "canary" not in open(path).read()
    # A hand edit into something invalid: servers keep serving, the rollout refuses.
    with open(path, "w") as f:
        f.write("model_config_list { config { name: ")
    time.sleep(3 * POLL_S)
    for c in clients:
        wait_for(lambda c=c: c.metadata(model=MODEL).version == 2, what="still serving")
    with pytest.raises(Exception, match=r"models.config"):
        rollout.canary(1)
    for c in clients:
        c.close()


def test_traffic_split_sends_the_share_of_unlabelled_requests_to_the_canary(fleet, tmp_path):
    import urllib.request

    import numpy as np

    from serving.client import ServingClient
    from serving.rollout.labels import Rollout

    path, base, servers = fleet
    clients = _clients(servers)
    Rollout(path, clients, wait_timeout_s=60, push=False).canary(1)  # stable 2, canary 1
    with running_server(model_config_file=path, model_config_file_poll_wait_seconds=POLL_S,
                        allow_version_labels_for_unavailable_models=True,
                        metrics_path="/monitoring/prometheus/metrics") as server, \
            ServingClient(server.grpc_target, canary_share=0.25) as client:
        wait_for(lambda: client.metadata(model=MODEL, label="canary").version == 1, what="canary label")
        z = np.zeros((1, 100), np.float32)
        versions = [client.predict({"z": z}, model=MODEL).version for _ in range(8)]
        assert versions.count(1) == 2 and versions.count(2) == 6
        assert client.split_counts == {"canary": 2, "default": 6}
        assert client.predict({"z": z}, model=MODEL, version=2).version == 2  # named versions are never split
        text = urllib.request.urlopen(server.rest_url + "/monitoring/prometheus/metrics", timeout=10).read().decode()
        per_version = {v: sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                              if line.startswith("dcgan_serving_requests_total") and 'method="predict"' in line
                              and f'version="{v}"' in line) for v in (1, 2)}
        assert per_version == {1: 2.0, 2: 7.0}
    with pytest.raises(ValueError, match="canary_share"):
        ServingClient("127.0.0.1:1", canary_share=1.5)
    for c in clients:
        c.close()


def test_dcgan_rollout_cli_moves_every_replica_and_refuses_bad_input(fleet, tmp_path, capsys):
    from dcgan.cli import main

    path, base, servers = fleet
    targets = ",".join(s.grpc_target for s in servers)
    assert main(["rollout", "canary", "1", "--config", path, "--server", targets, "--timeout", "60"]) == 0
    out = capsys.readouterr().out
    assert all(f"replica {s.grpc_target}: ok" in out for s in servers)
    assert main(["rollout", "promote", "--config", path, "--server", targets, "--no-wait"]) == 0
    assert main(["rollout", "status", "--config", path, "--server", targets, "--timeout", "60"]) == 0
    capsys.readouterr()
    assert main(["rollout", "status", "--config", path, "--server", "127.0.0.1"]) == 2
    assert "--server entry '127.0.0.1' is not HOST:PORT" in capsys.readouterr().err
    missing = str(tmp_path / "nowhere" / "models.config")
    assert main(["rollout", "canary", "1", "--config", missing, "--server", targets]) != 0
    assert "cannot read the model config" in capsys.readouterr().err
