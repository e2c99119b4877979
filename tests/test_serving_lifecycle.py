"""Model lifecycle of the server: hot-loading version directories, failed loads that never replace a working
version, config files (policies, labels, broken files), HandleReloadConfigRequest, canary → promote → rollback,
server-side batching and graceful shutdown. Each test runs its own in-process server on free loopback ports."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from serving_helpers import MODEL, Stubs, add_version, code_of, running_server, wait_for, write_config, z_batch


@pytest.fixture
def base(tmp_path, tiny_saved_model):
    path = str(tmp_path / "models" / MODEL)
    add_version(tiny_saved_model, path, 1)
    return path


def _version(stubs: Stubs, **target) -> int:
    return stubs.predict({"z": z_batch(1)}, **target).model_spec.version.value


def _corrupt_version(base: str, version: int) -> str:
    path = os.path.join(base, str(version))
    os.makedirs(os.path.join(path, "variables"))
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.write(b"this is not a SavedModel protobuf")
    return path


def test_new_version_directory_is_hot_loaded_then_the_old_one_unloaded_without_failed_requests(
        base, tiny_saved_model):
    with running_server(model_name=MODEL, model_base_path=base) as server:
        stubs = Stubs(server.grpc_target)
        errors, versions, stop = [], set(), threading.Event()

        def traffic():
            while not stop.is_set():
                try:
                    versions.add(_version(stubs))
                except grpc.RpcError as e:
                    errors.append(e.details())

        worker = threading.Thread(target=traffic)
        worker.start()
        try:
            # A half-written export (dcgan.export writes to a dot-prefixed sibling first) and other names are ignored.
            os.makedirs(os.path.join(base, ".2.tmp-123-456"))
            os.makedirs(os.path.join(base, "not-a-version"))
            time.sleep(0.5)
            assert stubs.status() == {1: ("AVAILABLE", 0, "")}
            add_version(tiny_saved_model, base, 2)
            wait_for(lambda: stubs.status() == {2: ("AVAILABLE", 0, ""), 1: ("END", 0, "")}, what="2 in, 1 out")
            wait_for(lambda: 2 in versions, what="traffic answered by version 2")
        finally:
            stop.set()
            worker.join()
        stubs.close()
    assert not errors, f"requests failed during the version swap: {errors[:3]}"
    assert versions == {1, 2}


def test_trailing_bytes_after_the_saved_model_are_data_loss_and_other_threads_warnings_stay_warnings(
        tmp_path, tiny_saved_model):
    """A saved_model.pb with bytes after the message is DATA_LOSS on both protobuf parsers (upb raises, C++ parses
    less), found without warnings.catch_warnings(): its filters are the whole process's, and while the model
    server's loader thread held them at "error", a warning in another thread was raised as an exception."""
    import warnings

    from serving.errors import ServingError
    from serving.model_server.servable import read_meta_graph

    path = str(tmp_path / "1")
    shutil.copytree(tiny_saved_model, path)
    assert read_meta_graph(path).meta_info_def.tags == ["serve"]
    with open(os.path.join(path, "saved_model.pb"), "ab") as f:
        f.write(b"\x00\x00trailing bytes")
    stop, raised = threading.Event(), []

    def warn_meanwhile():
        while not stop.is_set():
            try:
                warnings.warn("a warning in another thread", ResourceWarning, stacklevel=1)
            except ResourceWarning as e:
                raised.append(e)

    other = threading.Thread(target=warn_meanwhile)
    interval = sys.getswitchinterval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        sys.setswitchinterval(1e-6)  # the threads take turns every few bytecodes: the window is hit, not hoped for
        other.start()
        try:
            for _ in range(200):
                with pytest.raises(ServingError, match=r"Can't parse .*saved_model\.pb as binary proto") as e:
                    read_meta_graph(path)
                assert e.value.code.name == "DATA_LOSS"
        finally:
            stop.set()
            other.join()
            sys.setswitchinterval(interval)
    assert raised == []


def test_failed_version_is_reported_and_never_replaces_the_working_one(base, tiny_saved_model):
    with running_server(model_name=MODEL, model_base_path=base) as server:
        stubs = Stubs(server.grpc_target)
        _corrupt_version(base, 2)
        status = wait_for(lambda: (s := stubs.status()).get(2, ("",))[0] == "END" and s, what="version 2 to fail")
        state, code, message = status[2]
        assert code == grpc.StatusCode.DATA_LOSS.value[0] and "saved_model.pb" in message
        assert status[1] == ("AVAILABLE", 0, "")
        assert _version(stubs) == 1, "the failed version must not replace the working one"
        time.sleep(0.6)  # several polls: the unchanged broken directory is not retried over and over
        assert stubs.status()[2][0] == "END"
        # Fixing the directory makes the server retry it.
        shutil.rmtree(os.path.join(base, "2"))
        add_version(tiny_saved_model, base, 2)
        wait_for(lambda: _version(stubs) == 2, what="the repaired version 2")
        stubs.close()


def test_version_policies_all_and_specific_from_a_config_file(tmp_path, base, tiny_saved_model):
    add_version(tiny_saved_model, base, 2)
    config = write_config(str(tmp_path / "models.config"), [
        {"name": MODEL, "base_path": base, "policy": "all"},
        {"name": "pinned", "base_path": base, "policy": [1]},
    ])
    with running_server(model_config_file=config) as server:
        stubs = Stubs(server.grpc_target)
        assert set(stubs.status()) == {1, 2} and _version(stubs) == 2
        assert stubs.status("pinned") == {1: ("AVAILABLE", 0, "")}
        assert _version(stubs, model="pinned") == 1
        stubs.close()


def test_broken_config_file_keeps_the_old_config_serving(tmp_path, base, tiny_saved_model):
    add_version(tiny_saved_model, base, 2)
    path = write_config(str(tmp_path / "models.config"), [{"name": MODEL, "base_path": base, "policy": [1]}])
    with running_server(model_config_file=path, model_config_file_poll_wait_seconds=0.2) as server:
        stubs = Stubs(server.grpc_target)
        assert _version(stubs) == 1
        with open(path, "w") as f:
            f.write("model_config_list { config { name: 'dcgan' base_path: ")  # truncated, unparsable
        metric = 'dcgan_serving_config_reloads_total{result="error",source="file"} 1.0'
        wait_for(lambda: metric in server.metrics.render().decode(), what="the reload error to be counted")
        assert _version(stubs) == 1 and stubs.status() == {1: ("AVAILABLE", 0, "")}
        # A label on a version that is not loaded: refused whole, the old config stays.
        write_config(path, [{"name": MODEL, "base_path": base, "policy": [1, 2], "labels": {"canary": 2}}])
        wait_for(lambda: 'result="error",source="file"} 2.0' in server.metrics.render().decode(),
                 what="the refused config to be counted")
        assert stubs.status() == {1: ("AVAILABLE", 0, "")}
        # A valid change is applied.
        write_config(path, [{"name": MODEL, "base_path": base, "policy": [2]}])
        wait_for(lambda: _version(stubs) == 2, what="the new config")
        stubs.close()


def test_reload_config_rpc_refuses_labels_on_unavailable_versions(tmp_path, base, tiny_saved_model):
    from serving.client import ServingClient, ServingClientError
    from serving.model_server import config as cfg

    add_version(tiny_saved_model, base, 2)
    path = write_config(str(tmp_path / "models.config"), [{"name": MODEL, "base_path": base, "policy": [1]}])
    with running_server(model_config_file=path) as server, ServingClient(server.grpc_target) as client:
        wanted = cfg.read_model_server_config(write_config(str(tmp_path / "b.config"), [
            {"name": MODEL, "base_path": base, "policy": [1, 2], "labels": {"canary": 2}}]))
        with pytest.raises(ServingClientError) as info:
            client.reload_config(wanted)
        assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "Request to assign label to version 2 of model dcgan" in info.value.details
        assert [s.version for s in client.status(MODEL)] == [1]
        bad = cfg.read_model_server_config(write_config(str(tmp_path / "c.config"), [
            {"name": MODEL, "base_path": "relative/path"}]))
        with pytest.raises(ServingClientError) as info:
            client.reload_config(bad)
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT and "absolute path" in info.value.details


def test_labels_in_the_config_at_startup_need_the_allow_flag(tmp_path, base):
    from serving.errors import Code, ServingError

    path = write_config(str(tmp_path / "models.config"), [{"name": MODEL, "base_path": base, "policy": [1],
                                                          "labels": {"stable": 1}}])
    with pytest.raises(ServingError) as info, running_server(model_config_file=path):
        pass
    assert info.value.code == Code.FAILED_PRECONDITION and "not currently available" in info.value.message
    with running_server(model_config_file=path, allow_version_labels_for_unavailable_models=True) as server:
        assert _version(Stubs(server.grpc_target), label="stable") == 1


def test_canary_promote_rollback(tmp_path, base, tiny_saved_model):
    from serving.client import ServingClient
    from serving.model_server import config as cfg
    from serving.rollout.labels import Rollout, RolloutError

    path = write_config(str(tmp_path / "models.config"), [{"name": MODEL, "base_path": base}])
    add_version(tiny_saved_model, base, 3)
    with running_server(model_config_file=path, file_system_poll_wait_seconds=0) as server, \
            ServingClient(server.grpc_target) as client:
        stubs = Stubs(server.grpc_target)
        assert _version(stubs) == 3  # latest
        rollout = Rollout(path, client, wait_timeout_s=30)
        # First canary: the version being served becomes `stable`, the candidate is loaded, then labelled.
        status = rollout.canary(1)
        assert status.labels == {"stable": 3, "canary": 1} and status.policy == "specific 1,3"
        assert (_version(stubs, label="stable"), _version(stubs, label="canary")) == (3, 1)
        assert dict(cfg.model_configs(cfg.read_model_server_config(path))[MODEL].version_labels) == status.labels
        with pytest.raises(RolloutError, match="no version 7"):
            rollout.canary(7)
        # Promote: canary becomes stable; the old stable stays loaded as `previous`.
        status = rollout.promote()
        assert status.labels == {"stable": 1, "previous": 3}
        assert _version(stubs, label="stable") == 1 and _version(stubs, label="previous") == 3
        assert code_of(lambda: _version(stubs, label="canary"))[0] == grpc.StatusCode.INVALID_ARGUMENT
        # Roll the promotion back: stable is 3 again and version 1 unloads.
        status = rollout.rollback()
        assert status.labels == {"stable": 3}
        assert _version(stubs, label="stable") == 3
        assert {v.version: v.state for v in status.versions} == {3: "AVAILABLE", 1: "END"}
        # A canary that fails to load is refused and nothing changes; then a canary is rolled back.
        _corrupt_version(base, 4)
        with pytest.raises(RolloutError, match="did not become AVAILABLE"):
            rollout.canary(4)
        assert rollout.status().labels == {"stable": 3}
        assert rollout.canary(1).labels == {"stable": 3, "canary": 1}
        status = rollout.rollback()
        assert status.labels == {"stable": 3} and {v.version: v.state for v in status.versions}[1] == "END"
        with pytest.raises(RolloutError, match="nothing to roll back"):
            rollout.rollback()
        stubs.close()


def test_server_side_batching_merges_concurrent_requests_with_tf_serving_rules(tmp_path, base):
    params = tmp_path / "batching.txt"
    params.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 200000 }\n"
                      "max_enqueued_batches { value: 16 }\nnum_batch_threads { value: 1 }\n")
    with running_server(model_name=MODEL, model_base_path=base, enable_batching=True,
                        batching_parameters_file=str(params)) as server:
        stubs = Stubs(server.grpc_target)
        results, errors = {}, []

        def call(i):
            try:
                results[i] = tf.make_ndarray(stubs.predict({"z": z_batch(1, seed=i)}).outputs["images"])
            except grpc.RpcError as e:
                errors.append(e.details())

        threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(results) == 8
        single = tf.make_ndarray(stubs.predict({"z": z_batch(1, seed=3)}).outputs["images"])
        np.testing.assert_allclose(results[3], single, atol=1e-5)
        metrics = server.metrics.render().decode()
        count = float(metrics.split('dcgan_serving_batch_size_count{model="dcgan",signature="serving_default",'
                                    'version="1"} ')[1].split()[0])
        assert count < 9, f"8 concurrent requests + 1 ran in {count} batches: they were not batched"
        code, details = code_of(lambda: stubs.predict({"z": z_batch(9)}))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "Task size 9 is larger than maximum input batch size 8" \
            in details
        # Every signature has batch-shaped inputs, so interpolate batches too.
        z = z_batch(1)
        path = tf.make_ndarray(stubs.predict({"z0": np.repeat(z, 3, 0), "z1": np.repeat(z_batch(1, seed=4), 3, 0),
                                              "t": np.array([0, 0.5, 1], np.float32)},
                                             signature="interpolate").outputs["z"])
        assert path.shape == (3, 100) and np.array_equal(path[0], z[0])
        stubs.close()


def test_graceful_shutdown_answers_requests_in_flight(tmp_path, base):
    params = tmp_path / "batching.txt"
    params.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 1000000 }\n")
    with running_server(model_name=MODEL, model_base_path=base, enable_batching=True,
                        batching_parameters_file=str(params), shutdown_grace_seconds=5) as server:
        stubs = Stubs(server.grpc_target)
        outcome = {}

        def slow_request():  # waits ~1 s in the batch queue
            try:
                outcome["version"] = _version(stubs)
            except grpc.RpcError as e:
                outcome["error"] = e.code()

        worker = threading.Thread(target=slow_request)
        worker.start()
        scheduler = server.core._scheduler
        wait_for(lambda: any(q.batches for q in scheduler._queues), timeout=20, interval=0.01,
                 what="the request to wait in the batch queue")
        server.stop()
        worker.join()
        assert outcome == {"version": 1}
        assert code_of(lambda: stubs.predict({"z": z_batch(1)}, timeout=2))[0] == grpc.StatusCode.UNAVAILABLE
        stubs.close()


def _write_warmup(version_dir: str, seeds: np.ndarray) -> None:
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = MODEL, "generate"
    request.inputs["seed"].CopyFrom(tf.make_tensor_proto(seeds))
    log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    with tf.io.TFRecordWriter(os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests")) as writer:
        writer.write(log.SerializeToString())


def test_warmup_requests_are_replayed_at_load_and_a_failing_one_fails_the_load(base, tiny_saved_model):
    from serving.model_server.servable import Servable

    _write_warmup(os.path.join(base, "1"), np.array([1, 2], np.int64))
    assert Servable(MODEL, 1, os.path.join(base, "1")).warmup_requests == 1
    with running_server(model_name=MODEL, model_base_path=base) as server:
        stubs = Stubs(server.grpc_target)
        staging = os.path.join(base, ".2.tmp")
        shutil.copytree(tiny_saved_model, staging)
        _write_warmup(staging, np.array([1.5], np.float32))  # wrong dtype for `seed`
        os.replace(staging, os.path.join(base, "2"))
        status = wait_for(lambda: (s := stubs.status()).get(2, ("",))[0] == "END" and s, what="version 2 to fail")
        assert "Expects arg[0] to be int64" in status[2][2] and status[1][0] == "AVAILABLE"
        assert _version(stubs) == 1
        stubs.close()


def test_one_bad_request_in_a_merged_batch_fails_alone(tmp_path, base):
    """16 concurrent clients with batching, one sends a NaN z: only that one gets INVALID_ARGUMENT."""
    params = tmp_path / "batching.txt"
    params.write_text("max_batch_size { value: 16 }\nbatch_timeout_micros { value: 500000 }\n"
                      "max_enqueued_batches { value: 16 }\nnum_batch_threads { value: 1 }\n")
    with running_server(model_name=MODEL, model_base_path=base, enable_batching=True,
                        batching_parameters_file=str(params)) as server:
        stubs = Stubs(server.grpc_target)
        codes: dict[int, grpc.StatusCode] = {}
        start = threading.Barrier(16)

        def call(i):
            z = z_batch(1, seed=i)
            if i == 7:
                z[0, 5] = np.nan
            start.wait()
            try:
                stubs.predict({"z": z})
                codes[i] = grpc.StatusCode.OK
            except grpc.RpcError as e:
                codes[i] = e.code()

        threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stubs.close()
        assert codes[7] == grpc.StatusCode.INVALID_ARGUMENT
        failed = sorted(i for i, c in codes.items() if c != grpc.StatusCode.OK)
        assert failed == [7], f"requests {failed} failed; only the NaN one (7) should have"


def _load_failures(server, version: int) -> float:
    metrics = server.metrics.render().decode()
    for line in metrics.splitlines():
        if line.startswith("dcgan_serving_model_load_failures_total{") and f'version="{version}"' in line:
            return float(line.split()[-1])
    return 0.0


def test_a_failed_version_is_retried_on_a_back_off_timer_without_file_changes(base, tiny_saved_model):
    with running_server(model_name=MODEL, model_base_path=base) as server:
        _corrupt_version(base, 2)
        wait_for(lambda: _load_failures(server, 2) >= 1, what="version 2 to fail once")
        wait_for(lambda: _load_failures(server, 2) >= 2, timeout=15, what="version 2 to be retried (back-off)")


def test_a_version_whose_variables_were_still_being_written_loads_once_they_are_complete(base, tiny_saved_model):
    """The Pusher's copy is not atomic: variables/ may be incomplete when saved_model.pb is already there. Rewriting
    the data file in place (same directory listing) must still make the server load the version."""
    data = [n for n in os.listdir(os.path.join(tiny_saved_model, "variables")) if n.startswith("variables.data")][0]
    with running_server(model_name=MODEL, model_base_path=base) as server:
        stubs = Stubs(server.grpc_target)
        target = os.path.join(base, "2")
        shutil.copytree(tiny_saved_model, target)
        full = open(os.path.join(tiny_saved_model, "variables", data), "rb").read()
        with open(os.path.join(target, "variables", data), "r+b") as f:  # the copy is still under way
            f.truncate(len(full) // 3)
        wait_for(lambda: stubs.status().get(2, ("",))[0] == "END", what="the partial version 2 to fail")
        assert _version(stubs) == 1
        with open(os.path.join(target, "variables", data), "r+b") as f:  # the copy completes
            f.write(full)
        wait_for(lambda: _version(stubs) == 2, timeout=30, what="version 2 once complete")
        stubs.close()
