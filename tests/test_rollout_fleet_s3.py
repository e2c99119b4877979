"""A fleet on an object store: three model-server replicas on loopback poll ONE `s3://…/models.config` on the real
S3 server on loopback (moto), their versions in the same bucket; `dcgan rollout` writes that config with conditional
PUTs (ETag) under a lease object and waits for every replica.

The replicas are in-process `ModelServer`s (the server `dcgan serve` runs), not subprocesses: on this 2-core machine
shared by several jobs one `dcgan serve` subprocess took ~2 minutes to import TensorFlow and start (load average 21),
three of them did not start within 300 s. They start once per module; poll intervals are 0.5 s.

The rollout's S3 traffic goes through a loopback TCP relay that the test cuts, so "the config store is unreachable"
is a real network failure for the operator. The replicas' tensorflow-io S3 client keeps its endpoint for the life of
the process (the session's S3 server), so they are not cut here: that they keep their config when a poll cannot read
the file is the server's own behaviour (serving.model_server.core logs the error and keeps the current config)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time

import pytest
from conftest import free_port
from serving_helpers import MODEL, running_server, wait_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BUCKET = "fleet-rollout"
CONFIG_KEY = "serving/models.config"
CONFIG_URL = f"s3://{BUCKET}/{CONFIG_KEY}"
BASE = f"s3://{BUCKET}/models/{MODEL}"
POLL_S = 0.5
INITIAL = (f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{BASE}" model_platform: "tensorflow" '
           "model_version_policy { specific { versions: 2 } } version_labels { key: \"stable\" value: 2 } } }\n")


class Relay:
    """A loopback TCP relay to `upstream` that can be cut (listener closed, open connections reset) and restored on
    the same port."""

    def __init__(self, upstream_port: int):
        self.upstream_port, self.port = upstream_port, free_port()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept(); stops listening
            self._listener.close()
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)


class Fleet:
    """Three in-process replicas (see the module docstring for why not subprocesses) polling CONFIG_URL."""

    def __init__(self, s3, relay: Relay):
        self.s3, self.relay = s3, relay
        self.stack = contextlib.ExitStack()
        self.replicas: list = [None, None, None]
        self.stops: list = [None, None, None]

    @property
    def targets(self) -> list[str]:
        return [r.grpc_target for r in self.replicas]

    def start(self, i: int, port: int | None = None):
        stack = contextlib.ExitStack()
        options = {"model_config_file": CONFIG_URL, "model_config_file_poll_wait_seconds": POLL_S,
                   "file_system_poll_wait_seconds": POLL_S, "allow_version_labels_for_unavailable_models": True}
        self.replicas[i] = stack.enter_context(running_server(**options, **({"port": port} if port else {})))
        self.stops[i] = stack
        self.stack.push(stack.__exit__)
        return self.replicas[i]

    def stop(self, i: int) -> None:
        self.stops[i].close()

    def clients(self, timeout: float = 10.0):
        from serving.client import ServingClient

        return [ServingClient(t, timeout=timeout, retries=1) for t in self.targets]

    def reset(self) -> None:
        """Back to `stable: 2` everywhere (a plain PUT, as an operator's `aws s3 cp` would)."""
        self.s3.client().put_object(Bucket=BUCKET, Key=CONFIG_KEY, Body=INITIAL.encode())
        clients = self.clients()
        try:
            from serving.rollout.fleet import wait_converged

            lag = wait_converged(clients, MODEL, {2}, {"stable": 2}, timeout=120)
            assert not lag, lag
        finally:
            for c in clients:
                c.close()


@pytest.fixture(scope="module")
def fleet(s3_server, tiny_saved_model):
    client = s3_server.client()
    client.create_bucket(Bucket=BUCKET)
    for version in (1, 2):  # saved_model.pb last: a version folder is complete once it is there
        files = sorted((os.path.relpath(os.path.join(d, n), tiny_saved_model), os.path.join(d, n))
                       for d, _, names in os.walk(tiny_saved_model) for n in names)
        for rel, full in sorted(files, key=lambda f: f[0] == "saved_model.pb"):
            client.upload_file(full, BUCKET, f"models/{MODEL}/{version}/{rel}")
    client.put_object(Bucket=BUCKET, Key=CONFIG_KEY, Body=INITIAL.encode())
    relay = Relay(int(s3_server.endpoint.rsplit(":", 1)[1]))
    fleet = Fleet(s3_server, relay)
    with pytest.MonkeyPatch.context() as env:
        for key, value in s3_server.environment.items():
            env.setenv(key, value)
        with fleet.stack:
            for i in range(3):
                fleet.start(i)
            yield fleet
    relay.cut()


@pytest.fixture
def s3_rollout_env(fleet, s3_env, monkeypatch):  # s3_env: the replicas' variables stay as the fleet set them
    """This process's S3 traffic through the relay too, with the AWS SDK's retries off (short failures)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", fleet.relay.endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    fleet.reset()
    return fleet


def _labels_everywhere(fleet, label: str) -> set[int]:
    clients = fleet.clients()
    try:
        return {c.metadata(model=MODEL, label=label).version for c in clients}
    finally:
        for c in clients:
            c.close()


def test_canary_promote_rollback_move_all_three_replicas_through_one_s3_config(s3_rollout_env, capsys):
    from dcgan.cli import main

    fleet = s3_rollout_env
    servers = ",".join(fleet.targets)
    assert main(["rollout", "canary", "1", "--config", CONFIG_URL, "--server", servers, "--timeout", "120"]) == 0
    out = capsys.readouterr().out
    assert "canary    → version 1 (AVAILABLE)" in out and all(f"replica {t}: ok" in out for t in fleet.targets), out
    assert _labels_everywhere(fleet, "canary") == {1} and _labels_everywhere(fleet, "stable") == {2}
    assert main(["rollout", "promote", "--config", CONFIG_URL, "--server", servers, "--timeout", "120"]) == 0
    assert _labels_everywhere(fleet, "stable") == {1} and _labels_everywhere(fleet, "previous") == {2}
    assert main(["rollout", "rollback", "--config", CONFIG_URL, "--server", servers, "--timeout", "120"]) == 0
    assert _labels_everywhere(fleet, "stable") == {2}
    capsys.readouterr()
    # The writer of the config is recorded on the object (who to ask when an ETag check refuses a write).
    head = fleet.s3.client().head_object(Bucket=BUCKET, Key=CONFIG_KEY)
    assert head["Metadata"]["dcgan-writer"].endswith(": rollback"), head["Metadata"]
    # A version that is not on the store is refused before anything is written.
    assert main(["rollout", "canary", "9", "--config", CONFIG_URL, "--server", servers]) == 1
    assert f"{BASE} has no version 9 (versions on the store: [1, 2])" in capsys.readouterr().err


def test_a_second_rollout_is_refused_and_a_hand_edit_during_a_step_is_never_overwritten(s3_rollout_env):
    """Rollout A is held inside its first wait (a gate on one status call) while it holds the lease: rollout B (another
    operator) is refused naming A, and A then completes unaffected. Then A is held again and the config is edited by
    hand meanwhile: A's conditional write is refused naming the hand edit, which stays."""
    from serving.client import ServingClient
    from serving.rollout.labels import Rollout, RolloutError

    fleet = s3_rollout_env
    gate, waiting = threading.Event(), threading.Event()

    class Gated(ServingClient):
        def status(self, *args, **kwargs):
            waiting.set()
            gate.wait(60)
            return super().status(*args, **kwargs)

    def run_a(step: str, errors: list) -> threading.Thread:
        def run():
            clients = [Gated(fleet.targets[0], timeout=10.0)] + fleet.clients()[1:]
            try:
                rollout = Rollout(CONFIG_URL, clients, wait_timeout_s=120, push=False)
                rollout.canary(1) if step == "canary" else rollout.promote()
            except Exception as e:  # noqa: BLE001 - reported to the test thread
                errors.append(e)
            finally:
                for c in clients:
                    c.close()
        thread = threading.Thread(target=run)
        thread.start()
        return thread

    errors: list = []
    a = run_a("canary", errors)
    assert waiting.wait(60), "rollout A never reached its wait"
    b_clients = fleet.clients()
    with pytest.raises(RolloutError, match=r"another rollout of .* in progress: .*@.* pid \d+: canary 1"):
        Rollout(CONFIG_URL, b_clients, wait_timeout_s=30, push=False).promote()
    gate.set()
    a.join(180)
    assert not errors, errors
    assert _labels_everywhere(fleet, "canary") == {1}
    status = Rollout(CONFIG_URL, b_clients, push=False).status()
    assert status.labels == {"stable": 2, "canary": 1} and set(status.replicas.values()) == {"ok"}

    # A hand edit lands while A waits between its two writes (step 1 loads 1 beside 2, step 2 labels it).
    fleet.reset()
    gate.clear()
    waiting.clear()
    a = run_a("canary", errors)
    assert waiting.wait(60)
    step1 = fleet.s3.client().get_object(Bucket=BUCKET, Key=CONFIG_KEY)["Body"].read().decode()
    assert "versions: 1" in step1  # A wrote step 1 and waits; the edit keeps it loadable and adds a comment
    hand_edit = step1 + "# edited by hand\n"
    fleet.s3.client().put_object(Bucket=BUCKET, Key=CONFIG_KEY, Body=hand_edit.encode())
    gate.set()
    a.join(180)
    assert len(errors) == 1 and isinstance(errors[0], RolloutError), errors
    assert "changed since this rollout read it" in str(errors[0]), errors[0]
    assert "not `dcgan rollout`" in str(errors[0]) and "nothing was overwritten" in str(errors[0]), errors[0]
    body = fleet.s3.client().get_object(Bucket=BUCKET, Key=CONFIG_KEY)["Body"].read().decode()
    assert body == hand_edit
    for c in b_clients:
        c.close()


@pytest.mark.slow
def test_a_replica_stopped_during_a_rollout_is_named_and_converges_after_restart(s3_rollout_env):
    from serving.client import ServingClient
    from serving.rollout.labels import Rollout, RolloutError

    fleet = s3_rollout_env
    clients = fleet.clients()
    stopped = fleet.targets[2]
    fleet.stop(2)
    clients[2] = ServingClient(stopped, timeout=2.0, retries=1)
    with pytest.raises(RolloutError, match=rf"not become AVAILABLE on every replica.*{stopped}: unreachable"):
        Rollout(CONFIG_URL, clients, wait_timeout_s=5, push=False).canary(1)
    body = fleet.s3.client().get_object(Bucket=BUCKET, Key=CONFIG_KEY)["Body"].read().decode()
    assert "canary" not in body and "versions: 1" not in body  # reverted
    # The promote of a canary done while it is down: the file moves, the stopped replica is named as a straggler.
    fleet.start(2, port=int(stopped.rsplit(":", 1)[1]))
    assert Rollout(CONFIG_URL, clients, wait_timeout_s=120, push=False).canary(1).labels == {"stable": 2, "canary": 1}
    fleet.stop(2)
    with pytest.raises(RolloutError, match=rf"1 of 3 replicas did not converge.*{stopped}: unreachable"):
        Rollout(CONFIG_URL, clients, wait_timeout_s=3, push=False).promote()
    fleet.start(2, port=int(stopped.rsplit(":", 1)[1]))  # it reads the config itself and converges
    status = Rollout(CONFIG_URL, clients, wait_timeout_s=120, push=False).status()
    wait_for(lambda: set(Rollout(CONFIG_URL, clients, push=False).status().replicas.values()) == {"ok"},
             timeout=120, what="the restarted replica converging")
    assert status.labels == {"stable": 1, "previous": 2}
    assert _labels_everywhere(fleet, "stable") == {1}
    for c in clients:
        c.close()


def test_an_unreachable_store_and_an_invalid_hand_edit_are_refused_while_replicas_keep_serving(s3_rollout_env,
                                                                                              capsys):
    import numpy as np

    from dcgan.cli import main
    from serving.rollout.labels import Rollout, RolloutError

    fleet = s3_rollout_env
    servers = ",".join(fleet.targets)
    clients = fleet.clients()
    z = np.zeros((1, 100), np.float32)
    fleet.relay.cut()
    try:
        with pytest.raises(RolloutError, match=rf"cannot take the rollout lease of {CONFIG_URL}: the S3 endpoint "
                                               rf"{fleet.relay.endpoint} is unreachable.*keep their last good config"):
            Rollout(CONFIG_URL, clients, push=False).canary(1)
        assert main(["rollout", "status", "--config", CONFIG_URL, "--server", servers]) == 1
        assert f"cannot read the model config {CONFIG_URL}: the S3 endpoint" in capsys.readouterr().err
        assert all(c.predict({"z": z}, model=MODEL, label="stable").version == 2 for c in clients)
    finally:
        fleet.relay.restore()
    fleet.s3.client().put_object(Bucket=BUCKET, Key=CONFIG_KEY, Body=b"model_config_list { config { name: ")
    time.sleep(3 * POLL_S)  # several polls of the broken file
    assert all(c.predict({"z": z}, model=MODEL, label="stable").version == 2 for c in clients)
    with pytest.raises(Exception, match=r"Invalid protobuf file: 's3://fleet-rollout/serving/models.config'"):
        Rollout(CONFIG_URL, clients, push=False).canary(1)
    assert main(["rollout", "canary", "1", "--config", CONFIG_URL, "--server", servers]) == 2
    assert "Error parsing text-format" in capsys.readouterr().err
    for c in clients:
        c.close()
