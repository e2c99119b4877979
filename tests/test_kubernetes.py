"""The Kubernetes manifests (kustomize base + overlays), rendered offline with kubernetes/render.py and validated
with kubernetes-validate --strict; their TF Serving config files and flags are checked against our own server, which
reads the same formats."""

from __future__ import annotations

import importlib.util
import os
import shlex

import kubernetes_validate
import pytest
import yaml
from conftest import REPO

K8S = os.path.join(REPO, "kubernetes")
OVERLAYS = ["base", "overlays/canary", "overlays/batching"]
K8S_VERSION = "1.30"


def _renderer():
    spec = importlib.util.spec_from_file_location("kustomize_render", os.path.join(K8S, "render.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _renderer()


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {name: render.build(os.path.join(K8S, name)) for name in OVERLAYS}


def _one(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def _container(docs: list[dict], deployment: str) -> dict:
    return _one(docs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_manifest_is_valid_kubernetes_strict(rendered, overlay):
    docs = rendered[overlay]
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PersistentVolumeClaim",
                     "PodDisruptionBudget", "Service"]
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_tf_serving_uses_the_official_image_of_the_matching_tf_serving_release(rendered):
    from importlib.metadata import version

    from dcgan import stack

    image = _container(rendered["base"], "tf-serving")["image"]
    assert image == stack.SERVING_IMAGES[stack.LEGACY] == "tensorflow/serving:2.16.1"  # the base pins legacy's
    if stack.name() == stack.LEGACY:  # current: tfx-bsl 1.21 pins tensorflow-serving-api 2.19 for TF 2.21 models
        assert image == f"tensorflow/serving:{version('tensorflow-serving-api')}"


def test_tf_serving_flags_are_ones_dcgan_serve_also_accepts(rendered):
    """`dcgan serve` takes tensorflow_model_server's flags: the pod's command line parses as one of ours."""
    from dcgan.cli import build_parser

    for overlay in OVERLAYS:
        container = _container(rendered[overlay], "tf-serving")
        assert container["command"] == ["tensorflow_model_server"]
        args = build_parser().parse_args(["serve", *container["args"]])
        assert (args.port, args.rest_api_port, args.model_config_file) == (8500, 8501, "/config/models.config")
        assert args.monitoring_config_file == "/config/monitoring.config"
    assert build_parser().parse_args(["serve", *_container(rendered["overlays/batching"], "tf-serving")["args"]]
                                     ).enable_batching is True


def test_config_files_in_the_configmap_parse_and_point_into_the_mounted_volumes(rendered, tmp_path):
    from serving import config as cfg

    for overlay in OVERLAYS:
        docs = rendered[overlay]
        data = _one(docs, "ConfigMap", "tf-serving-config")["data"]
        assert set(data) == {"models.config", "batching_parameters.txt", "monitoring.config"}
        config = cfg.parse_model_server_config(data["models.config"], f"{overlay}/models.config")
        cfg.validate_model_server_config(config)
        model = cfg.model_configs(config)["dcgan"]
        assert model.base_path.startswith("/models/") and model.model_platform == "tensorflow"
        for name in ("batching_parameters.txt", "monitoring.config"):
            (tmp_path / name).write_text(data[name])
        assert cfg.parse_batching_parameters(str(tmp_path / "batching_parameters.txt")).max_batch_size == 32
        assert cfg.parse_monitoring_config(str(tmp_path / "monitoring.config")) == "/monitoring/prometheus/metrics"
        pod = _one(docs, "Deployment", "tf-serving")["spec"]["template"]["spec"]
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["config"]["configMap"]["name"] == "tf-serving-config" and mounts["config"] == "/config"
        assert volumes["models"]["persistentVolumeClaim"]["claimName"] == "dcgan-models"
        assert mounts["models"] == "/models" and _one(docs, "PersistentVolumeClaim", "dcgan-models")


def test_tf_serving_has_probes_resources_services_autoscaling_and_a_disruption_budget(rendered):
    docs = rendered["base"]
    container = _container(docs, "tf-serving")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 8500, "http": 8501}
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/models/dcgan"
    assert container["startupProbe"]["httpGet"]["port"] == "http" and "tcpSocket" in container["livenessProbe"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) and "memory" in container["resources"]["limits"]
    labels = _one(docs, "Deployment", "tf-serving")["spec"]["template"]["metadata"]["labels"]
    for service in ("tf-serving", "tf-serving-headless"):
        svc = _one(docs, "Service", service)
        assert svc["spec"]["selector"].items() <= labels.items()
        assert all(p["targetPort"] in ports for p in svc["spec"]["ports"])
    assert _one(docs, "Service", "tf-serving-headless")["spec"]["clusterIP"] == "None"
    hpa = _one(docs, "HorizontalPodAutoscaler", "tf-serving")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "tf-serving"}
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    pdb = _one(docs, "PodDisruptionBudget", "tf-serving")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()


def test_studio_runs_dcgan_studio_against_the_tf_serving_service(rendered):
    docs = rendered["base"]
    container = _container(docs, "studio")
    assert container["image"] == "dcgan-faces:0.1.0"
    command = container["command"]
    assert command[:2] == ["dcgan", "studio"]
    assert shlex.join(command[2:]) == ("--server tf-serving:8500 --host 0.0.0.0 --port 8080 "
                                       "--model-base-path /models/dcgan")
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/config"
    assert container["ports"][0]["containerPort"] == 8080
    svc = _one(docs, "Service", "studio")
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    pod = _one(docs, "Deployment", "studio")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    # The studio reads directions.json of the answering version from the same model volume, read-only.
    (models,) = [v for v in pod["volumes"] if v["name"] == "models"]
    assert models["persistentVolumeClaim"] == {"claimName": "dcgan-models", "readOnly": True}
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in container["volumeMounts"]


def test_canary_overlay_labels_two_versions_and_allows_labels_at_startup(rendered):
    from serving import config as cfg

    docs = rendered["overlays/canary"]
    model = cfg.model_configs(cfg.parse_model_server_config(
        _one(docs, "ConfigMap", "tf-serving-config")["data"]["models.config"]))["dcgan"]
    assert dict(model.version_labels) == {"stable": 1, "canary": 2}
    assert sorted(model.model_version_policy.specific.versions) == [1, 2]
    assert "--allow_version_labels_for_unavailable_models=true" in _container(docs, "tf-serving")["args"]
    assert "--allow_version_labels_for_unavailable_models=true" not in _container(rendered["base"],
                                                                                   "tf-serving")["args"]


def test_canary_overlay_config_serves_both_labels_on_our_server(rendered, tmp_path, tiny_saved_model):
    """The same models.config and flags, with base_path pointed at a local copy of the volume."""
    from serving_helpers import Stubs, add_version, running_server, z_batch

    docs = rendered["overlays/canary"]
    text = _one(docs, "ConfigMap", "tf-serving-config")["data"]["models.config"]
    base = str(tmp_path / "models" / "dcgan")
    for version in (1, 2):
        add_version(tiny_saved_model, base, version)
    path = tmp_path / "models.config"
    path.write_text(text.replace('base_path: "/models/dcgan"', f'base_path: "{base}"'))
    flag = "--allow_version_labels_for_unavailable_models=true" in _container(docs, "tf-serving")["args"]
    with running_server(model_config_file=str(path), allow_version_labels_for_unavailable_models=flag) as server:
        stubs = Stubs(server.grpc_target)
        for label, version in (("stable", 1), ("canary", 2)):
            assert stubs.predict({"z": z_batch(1)}, label=label).model_spec.version.value == version
        stubs.close()


# -- the renderer itself ----------------------------------------------------------------------------------------------
def test_renderer_hashes_generated_configmaps_like_kustomize_and_follows_references(tmp_path):
    # kustomize's documented outputs (kubernetes.io "Declarative Management ... Using Kustomize").
    assert render.configmap_hash({"metadata": {"name": "example-configmap-1"},
                                  "data": {"application.properties": "FOO=Bar\n"}}) == "8mbdf7882g"
    assert render.configmap_hash({"metadata": {"name": "example-configmap-2"}, "data": {"FOO": "Bar"}}) == "g2hdhfc6tk"
    (tmp_path / "app.yaml").write_text(yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app"},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {
            "metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1",
                                     "envFrom": [{"configMapRef": {"name": "env"}}]}],
                     "volumes": [{"name": "v", "configMap": {"name": "env"}}]}}}}))
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": ["app.yaml"], "namespace": "ns", "configMapGenerator": [{"name": "env", "literals": ["A=1"]}],
        "images": [{"name": "busybox", "newName": "registry/busybox", "newTag": "2"}],
        "commonLabels": {"team": "t"},
        "patches": [{"patch": yaml.safe_dump({"apiVersion": "apps/v1", "kind": "Deployment",
                                              "metadata": {"name": "app"},
                                              "spec": {"template": {"spec": {"containers": [
                                                  {"name": "c", "args": ["--x"]}]}}}})}]}))
    docs = render.build(str(tmp_path))
    cm = _one(docs, "ConfigMap", f"env-{render.configmap_hash({'metadata': {'name': 'env'}, 'data': {'A': '1'}})}")
    app = _one(docs, "Deployment", "app")
    pod = app["spec"]["template"]["spec"]
    assert pod["volumes"][0]["configMap"]["name"] == cm["metadata"]["name"]
    assert pod["containers"][0]["envFrom"][0]["configMapRef"]["name"] == cm["metadata"]["name"]
    assert pod["containers"][0] == {"name": "c", "image": "registry/busybox:2", "args": ["--x"],
                                    "envFrom": [{"configMapRef": {"name": cm["metadata"]["name"]}}]}
    assert app["metadata"]["namespace"] == "ns" and app["spec"]["selector"]["matchLabels"] == {"app": "x", "team": "t"}
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_renderer_refuses_what_it_does_not_implement(tmp_path):
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({"resources": [], "helmCharts": [{"name": "x"}]}))
    with pytest.raises(render.RenderError, match="helmCharts"):
        render.build(str(tmp_path))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_deployment_sets_replicas_where_an_hpa_owns_its_scale(rendered, overlay):
    """`replicas` beside an HPA resets the HPA's count on every `kubectl apply` (issue 11)."""
    docs = rendered[overlay]
    scaled = {d["spec"]["scaleTargetRef"]["name"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    assert scaled, "expected an HPA"
    for d in docs:
        if d["kind"] == "Deployment" and d["metadata"]["name"] in scaled:
            assert "replicas" not in d["spec"], f"Deployment/{d['metadata']['name']} sets replicas beside its HPA"
