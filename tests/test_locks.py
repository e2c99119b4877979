"""The lock files agree with each other: the pipeline image's lock (requirements-image.lock, Dockerfile) is the legacy
lock (requirements.lock) without pyproject's `test` extra, pin for pin and hash for hash (scripts/lock.sh writes
both from one resolution)."""

from __future__ import annotations

import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_lock(name: str) -> dict[str, dict]:
    """{package: {"version", "hashes", "via"}} of a `uv pip compile --generate-hashes` file."""
    with open(os.path.join(REPO, name)) as f:
        text = f.read()
    packages = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        head = re.match(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)", block)
        if head:
            via = re.findall(r"^\s+#\s+(?:via\s+)?([A-Za-z0-9_.\-]+(?: \(pyproject\.toml\))?)\s*$", block, re.M)
            hashes = set(re.findall(r"sha256:\w+", block))
            packages[head.group(1).lower()] = {"version": head.group(2), "hashes": hashes,
                                               "via": [v for v in via if v != "via"]}
    return packages


def extra_test_packages() -> list[str]:
    """The packages pyproject's `test` extra names."""
    with open(os.path.join(REPO, "pyproject.toml")) as f:
        block = re.search(r"^test = \[(.*?)^\]", f.read(), re.M | re.S).group(1)
    return [re.match(r"[A-Za-z0-9_.\-]+", name).group(0).lower() for name in re.findall(r'^\s*"([^"]+)"', block, re.M)]


def test_the_image_lock_is_the_legacy_lock_without_the_test_extra():
    full, image = read_lock("requirements.lock"), read_lock("requirements-image.lock")
    assert len(image) > 200 and len(full) > len(image)
    for name, pin in image.items():
        assert name in full, f"{name} is in the image lock only"
        assert (pin["version"], pin["hashes"]) == (full[name]["version"], full[name]["hashes"]), name
    for name in ("tfx", "tensorflow", "apache-beam", "tensorflow-io", "boto3", "mtcnn", "uvicorn", "kfp"):
        assert name in image, f"the image lock lacks the runtime dependency {name}"
    extra = extra_test_packages()
    assert {"pytest", "playwright", "moto", "mkdocs"} <= set(extra)
    for name in extra:  # only where a runtime package needs it (httpx: google-genai's client)
        assert name not in image or set(image[name]["via"]) - {"dcgan-faces (pyproject.toml)"}, (
            f"{name} (test extra) is in the image lock for the tests' sake")
