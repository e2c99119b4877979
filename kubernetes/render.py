#!/usr/bin/env python3
"""Render a kustomization offline — the subset of `kustomize build` these manifests use — when no kustomize/kubectl
binary is at hand (the tests use it; so can you: `python kubernetes/render.py kubernetes/overlays/canary`).

Supported: `resources` (files and directories), `configMapGenerator` (files, literals, envs; behavior
create/merge/replace; the content-hash name suffix and its references, or `disableNameSuffixHash`), `patches`
(JSON 6902 operation lists and strategic-merge patches, inline or from files, with `target` selection by
kind/name/labelSelector), `labels`/`commonLabels`, `commonAnnotations`, `namespace`, `images` and `replicas`.
Anything else in a kustomization is refused with an error instead of being silently ignored.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import sys

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "configMapGenerator", "patches", "labels", "commonLabels",
             "commonAnnotations", "namespace", "images", "replicas", "generatorOptions"}
HASH_ANNOTATION = "render.dcgan/needs-hash"
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding",
                  "CustomResourceDefinition", "PriorityClass"}


class RenderError(Exception):
    pass


def _load_kustomization(path: str) -> dict:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        file = os.path.join(path, name)
        if os.path.isfile(file):
            with open(file) as f:
                doc = yaml.safe_load(f) or {}
            unknown = set(doc) - SUPPORTED
            if unknown:
                raise RenderError(f"{file}: fields this renderer does not implement: {sorted(unknown)}")
            return doc
    raise RenderError(f"{path} has no kustomization.yaml")


def _load_yaml_docs(file: str) -> list[dict]:
    with open(file) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def _key(doc: dict) -> tuple[str, str]:
    return doc.get("kind", ""), doc.get("metadata", {}).get("name", "")


# -- generators -------------------------------------------------------------------------------------------------------
def _configmap_data(path: str, spec: dict) -> dict[str, str]:
    data: dict[str, str] = {}
    for entry in spec.get("files", []):
        key, _, file = entry.partition("=") if "=" in entry else (os.path.basename(entry), "", entry)
        with open(os.path.join(path, file), encoding="utf-8") as f:
            data[key] = f.read()
    for literal in spec.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    for env in spec.get("envs", []):
        with open(os.path.join(path, env), encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    key, _, value = line.partition("=")
                    data[key] = value
    return data


def _apply_generators(path: str, k: dict, resources: list[dict]) -> None:
    defaults = k.get("generatorOptions", {})
    for spec in k.get("configMapGenerator", []):
        name = spec["name"]
        behavior = spec.get("behavior", "create")
        options = {**defaults, **spec.get("options", {})}
        data = _configmap_data(path, spec)
        existing = next((r for r in resources if _key(r) == ("ConfigMap", name)), None)
        if behavior == "create":
            if existing is not None:
                raise RenderError(f"configMapGenerator {name}: already exists (use behavior: merge or replace)")
            cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
            resources.append(cm)
        else:
            if existing is None:
                raise RenderError(f"configMapGenerator {name}: behavior {behavior} but no ConfigMap {name} to change")
            cm = existing
            cm["data"] = {**cm.get("data", {}), **data} if behavior == "merge" else data
        meta = cm["metadata"]
        for field in ("labels", "annotations"):
            if options.get(field):
                meta.setdefault(field, {}).update(options[field])
        annotations = meta.setdefault("annotations", {})
        if options.get("disableNameSuffixHash"):
            annotations.pop(HASH_ANNOTATION, None)
        else:
            annotations[HASH_ANNOTATION] = "true"
        if not annotations:
            del meta["annotations"]


def configmap_hash(cm: dict, kustomize5: bool = True) -> str:
    """kustomize's name suffix: sha256 of the JSON encoding of {data, kind, name} (Go's json.Marshal: sorted keys,
    no spaces, <>& escaped), the first 10 hex characters with 0,1,3,a,e replaced by g,h,k,m,t.

    kustomize 5 (kubectl >= 1.27) encodes the generated ConfigMap before it has its name, so `name` is "" there; the
    examples on kubernetes.io (example-configmap-2-g2hdhfc6tk) come from kustomize 3/4, which encoded the name.
    `kustomize5=False` gives those."""
    name = "" if kustomize5 else cm["metadata"]["name"]
    encoded = {"kind": "ConfigMap", "name": name, "data": cm.get("data", {})}
    if cm.get("binaryData"):
        encoded["binaryData"] = cm["binaryData"]
    text = json.dumps(encoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _rename_configmap_references(doc, renames: dict[str, str]) -> None:
    """Follow a renamed ConfigMap into the workloads that use it."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("configMap", "configMapRef", "configMapKeyRef") and isinstance(value, dict) \
                    and value.get("name") in renames:
                value["name"] = renames[value["name"]]
            else:
                _rename_configmap_references(value, renames)
    elif isinstance(doc, list):
        for item in doc:
            _rename_configmap_references(item, renames)


def _finish_hashes(resources: list[dict]) -> None:
    renames = {}
    for r in resources:
        annotations = r.get("metadata", {}).get("annotations", {})
        if annotations.pop(HASH_ANNOTATION, None):
            if not annotations:
                del r["metadata"]["annotations"]
            old = r["metadata"]["name"]
            r["metadata"]["name"] = f"{old}-{configmap_hash(r)}"
            renames[old] = r["metadata"]["name"]
    for r in resources:
        if r.get("kind") != "ConfigMap":
            _rename_configmap_references(r, renames)


# -- patches ----------------------------------------------------------------------------------------------------------
def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise RenderError(f"JSON pointer must start with '/': {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts: list[str]):
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict):
            if part not in doc:
                raise RenderError(f"path element {part!r} not found")
            doc = doc[part]
        else:
            raise RenderError(f"cannot descend into {type(doc).__name__} at {part!r}")
    return doc


def apply_json6902(doc: dict, ops: list[dict]) -> None:
    for op in ops:
        kind, parts = op["op"], _pointer(op["path"])
        parent, last = _walk(doc, parts[:-1]), parts[-1]
        if kind in ("add", "replace"):
            value = copy.deepcopy(op["value"])
            if isinstance(parent, list):
                if last == "-":
                    parent.append(value)
                elif kind == "add":
                    parent.insert(int(last), value)
                else:
                    parent[int(last)] = value
            else:
                if kind == "replace" and last not in parent:
                    raise RenderError(f"replace: {op['path']} does not exist")
                parent[last] = value
        elif kind == "remove":
            if isinstance(parent, list):
                del parent[int(last)]
            else:
                del parent[last]
        elif kind == "test":
            if _walk(doc, parts) != op["value"]:
                raise RenderError(f"test failed at {op['path']}")
        else:
            raise RenderError(f"JSON patch operation {kind!r} is not implemented")


MERGE_KEYS = {"containers": "name", "initContainers": "name", "volumes": "name", "env": "name", "ports": "name",
              "volumeMounts": "mountPath", "imagePullSecrets": "name"}


def strategic_merge(base, patch, field: str = ""):
    """Strategic merge for the lists that need it here (containers, volumes, env, ports, volumeMounts merge by key;
    other lists are replaced); `null` deletes a key."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = strategic_merge(base.get(key), value, key)
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        # kustomize 5's order: the patch's items first, in the patch's order (merged with their namesakes), then
        # the items of base the patch does not name.
        key = MERGE_KEYS[field]
        named = {item.get(key) for item in patch if isinstance(item, dict)}
        out = []
        for item in patch:
            match = next((b for b in base if isinstance(b, dict) and b.get(key) == item.get(key)), None)
            out.append(copy.deepcopy(item) if match is None else strategic_merge(match, item, field))
        return out + [copy.deepcopy(b) for b in base if not (isinstance(b, dict) and b.get(key) in named)]
    return copy.deepcopy(patch)


def _matches(doc: dict, target: dict) -> bool:
    if target.get("kind") and doc.get("kind") != target["kind"]:
        return False
    if target.get("name") and not re.fullmatch(target["name"], doc.get("metadata", {}).get("name", "")):
        return False
    if target.get("version") and doc.get("apiVersion", "").split("/")[-1] != target["version"]:
        return False
    if target.get("group"):
        api = doc.get("apiVersion", "")
        if "/" not in api or api.split("/")[0] != target["group"]:
            return False
    if target.get("labelSelector"):
        labels = doc.get("metadata", {}).get("labels", {})
        for term in target["labelSelector"].split(","):
            k, _, v = term.partition("=")
            if labels.get(k.strip()) != v.strip():
                return False
    return True


def _apply_patches(path: str, k: dict, resources: list[dict]) -> None:
    for spec in k.get("patches", []):
        if "path" in spec:
            with open(os.path.join(path, spec["path"])) as f:
                text = f.read()
        else:
            text = spec["patch"]
        patch = yaml.safe_load(text)
        target = spec.get("target")
        if isinstance(patch, list):
            if not target:
                raise RenderError("a JSON 6902 patch needs a target")
            matched = [r for r in resources if _matches(r, target)]
            if not matched:
                raise RenderError(f"patch target {target} matches no resource")
            for r in matched:
                apply_json6902(r, patch)
        else:
            target = target or {"kind": patch.get("kind"), "name": re.escape(patch["metadata"]["name"])}
            matched = [i for i, r in enumerate(resources) if _matches(r, target)]
            if not matched:
                raise RenderError(f"patch target {target} matches no resource")
            for i in matched:
                body = {k2: v for k2, v in patch.items() if k2 not in ("apiVersion", "kind")}
                body["metadata"] = {k2: v for k2, v in patch.get("metadata", {}).items() if k2 != "name"}
                resources[i] = strategic_merge(resources[i], body)


# -- transformers -----------------------------------------------------------------------------------------------------
def _pod_templates(doc: dict) -> list[dict]:
    spec = doc.get("spec", {})
    if doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return [spec.get("template", {})]
    if doc.get("kind") == "CronJob":
        return [spec.get("jobTemplate", {}).get("spec", {}).get("template", {})]
    return []


def _apply_labels(k: dict, resources: list[dict]) -> None:
    groups = [{"pairs": k["commonLabels"], "includeSelectors": True, "includeTemplates": True}] \
        if k.get("commonLabels") else []
    groups += k.get("labels", [])
    for group in groups:
        pairs = group.get("pairs", {})
        for r in resources:
            r.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
            if group.get("includeTemplates") or group.get("includeSelectors"):
                for template in _pod_templates(r):
                    template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
            if group.get("includeSelectors"):
                spec = r.get("spec", {})
                if r.get("kind") == "Service":
                    spec.setdefault("selector", {}).update(pairs)
                elif "selector" in spec and isinstance(spec["selector"], dict):
                    spec["selector"].setdefault("matchLabels", {}).update(pairs)
    if k.get("commonAnnotations"):
        for r in resources:
            r.setdefault("metadata", {}).setdefault("annotations", {}).update(k["commonAnnotations"])
            for template in _pod_templates(r):
                template.setdefault("metadata", {}).setdefault("annotations", {}).update(k["commonAnnotations"])


def _split_image(image: str) -> tuple[str, str]:
    """'registry:5000/name:tag' → ('registry:5000/name', ':tag'); digests stay with their '@'."""
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, "@" + digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""


def _apply_images(k: dict, resources: list[dict]) -> None:
    for spec in k.get("images", []):
        for r in resources:
            for template in _pod_templates(r):
                pod = template.get("spec", {})
                for container in pod.get("containers", []) + pod.get("initContainers", []):
                    name, suffix = _split_image(container.get("image", ""))
                    if name != spec["name"]:
                        continue
                    name = spec.get("newName", name)
                    if "digest" in spec:
                        suffix = "@" + spec["digest"]
                    elif "newTag" in spec:
                        suffix = ":" + str(spec["newTag"])
                    container["image"] = name + suffix


def _apply_namespace_and_replicas(k: dict, resources: list[dict]) -> None:
    if k.get("namespace"):
        for r in resources:
            if r.get("kind") not in CLUSTER_SCOPED:
                r.setdefault("metadata", {})["namespace"] = k["namespace"]
    for spec in k.get("replicas", []):
        for r in resources:
            if r.get("metadata", {}).get("name") == spec["name"] and "replicas" in r.get("spec", {}):
                r["spec"]["replicas"] = spec["count"]


def _build(path: str) -> list[dict]:
    k = _load_kustomization(path)
    resources: list[dict] = []
    for entry in k.get("resources", []):
        full = os.path.normpath(os.path.join(path, entry))
        if os.path.isdir(full):
            resources += _build(full)
        elif os.path.isfile(full):
            resources += _load_yaml_docs(full)
        else:
            raise RenderError(f"{path}: resource {entry!r} not found (remote resources are not supported)")
    _apply_generators(path, k, resources)
    _apply_patches(path, k, resources)
    _apply_namespace_and_replicas(k, resources)
    _apply_labels(k, resources)
    _apply_images(k, resources)
    seen = set()
    for r in resources:
        key = (*_key(r), r.get("metadata", {}).get("namespace", ""))
        if key in seen:
            raise RenderError(f"{path}: duplicate resource {key}")
        seen.add(key)
    return resources


def build(path: str) -> list[dict]:
    """The manifests `kustomize build path` would print (as dicts)."""
    resources = copy.deepcopy(_build(os.path.abspath(path)))
    _finish_hashes(resources)
    return resources


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: render.py KUSTOMIZATION_DIR", file=sys.stderr)
        return 2
    try:
        print(yaml.safe_dump_all(build(argv[0]), sort_keys=False), end="")
    except (RenderError, OSError, yaml.YAMLError) as e:
        print(f"render.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
