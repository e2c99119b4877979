"""A model server polling its `--model_config_file` on S3 while a rollout rewrites it must read each version of the
file whole: the config is read with one GET. (tensorflow-io reads an object in ranged requests; a rewrite between
them handed replicas a file cut short, seen as "Expected '}'" reload errors in the fleet convergence benchmark.)"""

from __future__ import annotations

import threading

import pytest

from serving.model_server import config as cfg


def _config(versions: int) -> str:
    # Configs of very different lengths, as a canary (labels added) and a rollback (labels removed) are.
    labels = "".join(f'    version_labels {{ key: "l{i}" value: {i} }}\n' for i in range(versions))
    return ('model_config_list {\n  config {\n    name: "dcgan"\n    base_path: "s3://b/models"\n'
            f'    model_platform: "tensorflow"\n{labels}  }}\n}}\n')


@pytest.mark.slow
def test_a_config_rewritten_during_polls_is_always_read_whole(s3_env):
    bucket = s3_env.create_bucket("config-race")
    url = f"{bucket}/serving/models.config"
    client = s3_env.client()
    texts = [_config(n) for n in (0, 40, 3, 200)]
    client.put_object(Bucket="config-race", Key="serving/models.config", Body=texts[0].encode())
    stop = threading.Event()

    def rewrite() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            client.put_object(Bucket="config-race", Key="serving/models.config", Body=texts[i % len(texts)].encode())

    writer = threading.Thread(target=rewrite, daemon=True)
    writer.start()
    try:
        partial = [text for text in (cfg.read_text(url) for _ in range(150)) if text not in texts]
    finally:
        stop.set()
        writer.join()
    assert not partial, f"{len(partial)} of 150 reads returned a config that was never written, e.g. {partial[0]!r}"
    cfg.parse_model_server_config(cfg.read_text(url), url)
