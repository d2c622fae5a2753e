"""The object-storage path: LanceDB tables on an S3-compatible server (moto) started by the test
on 127.0.0.1, credentials and endpoint from the environment — no real cloud."""
import os
import socket
import subprocess
import sys
import time

import pytest

import visual_curation as vc
from visual_curation.core import store as vcs


@pytest.fixture()
def s3_env(monkeypatch):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for k, v in dict(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                     AWS_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint).items():
        monkeypatch.setenv(k, v)
    import boto3

    deadline = time.time() + 30
    while True:
        try:
            boto3.client("s3").create_bucket(Bucket="vc-test-bucket")
            break
        except Exception:  # noqa: BLE001 - server still starting
            if time.time() > deadline:
                proc.kill()
                raise
            time.sleep(0.2)
    yield "s3://vc-test-bucket/lancedb"
    proc.kill()
    proc.wait()


def test_embeddings_search_and_delete_on_object_storage(fmnist_dataset, s3_env):
    ds, _ = fmnist_dataset
    uri = s3_env
    r = vc.compute_embeddings(ds, model="demo", uri=uri)
    assert r.embedded == len(ds) and r.uri == uri
    assert vc.compute_embeddings(ds, model="demo", uri=uri).embedded == 0
    store = vcs.VectorStore.for_dataset(ds, "demo", uri=uri)
    assert store.count() == len(ds)
    # the run record remembers where the vectors are: search needs no uri
    view = vc.find_similar(ds, sample_id=ds.first().id, k=5)
    assert view.first().id == ds.first().id
    removed = vc.delete_run(ds)
    assert store.name in removed["tables"]
    assert not vcs.VectorStore.for_dataset(ds, "demo", uri=uri).exists()
