"""Fetching versions into the cache, from a folder and from a real S3 server."""

from __future__ import annotations

import os

import boto3
import numpy as np
import pytest
from serving_support import arith_model, predict_request

from imm.serving.errors import ModelError
from imm.serving.fetch import fetch
from imm.serving.tensors import to_ndarray


def test_local_fetch_copies_once_and_follows_changes(tmp_path):
    base, cache = tmp_path / "models", tmp_path / "cache"
    arith_model(base / "1" / "m.onnx")
    arith_model(base / "4" / "sub" / "m.onnx")
    (base / "4" / "sub" / "labels.txt").write_text("a\nb\n")
    (base / "10").mkdir()  # incomplete: no model file yet

    first = fetch(str(base), "demo", None, cache)
    assert (first.version, first.copied, first.reused) == (4, 2, 0)
    assert (cache / "demo" / "4" / "sub" / "labels.txt").read_text() == "a\nb\n"

    again = fetch(str(base), "demo", None, cache)
    assert (again.copied, again.reused) == (0, 2)

    labels = base / "4" / "sub" / "labels.txt"
    labels.write_text("a\nb\nc\n")
    os.utime(labels, ns=(1, 1))
    changed = fetch(str(base), "demo", None, cache)
    assert (changed.copied, changed.reused) == (1, 1)
    assert (cache / "demo" / "4" / "sub" / "labels.txt").read_text() == "a\nb\nc\n"

    labels.unlink()
    fetch(str(base), "demo", None, cache)
    assert not (cache / "demo" / "4" / "sub" / "labels.txt").exists()

    assert fetch(str(base), "demo", 1, cache).version == 1
    with pytest.raises(ModelError, match=r"version 10 under .* holds neither"):
        fetch(str(base), "demo", 10, cache)


@pytest.fixture
def s3_models(seaweed, tmp_path):
    """The arith model as versions 1 and 3 of s3://<bucket>/demo, uploaded with boto3."""
    prefix = seaweed.unique_prefix()
    bucket = f"{prefix}tenant"
    client = boto3.client(
        "s3",
        endpoint_url=seaweed.endpoint,
        aws_access_key_id=seaweed.access_key,
        aws_secret_access_key=seaweed.secret_key,
        region_name=seaweed.region,
    )
    client.create_bucket(Bucket=bucket)
    model = arith_model(tmp_path / "src" / "m.onnx")
    for version in (1, 3):
        client.upload_file(str(model), bucket, f"demo/{version}/model.onnx")
    client.put_object(Bucket=bucket, Key="demo/3/extra/notes.txt", Body=b"hello")
    client.put_object(Bucket=bucket, Key="demo/7/notes.txt", Body=b"incomplete")
    env = seaweed.env(prefix)
    return f"s3://{bucket}/demo", env, client, bucket


def test_s3_fetch_skips_objects_the_cache_holds(s3_models, tmp_path, monkeypatch):
    uri, env, client, bucket = s3_models
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cache = tmp_path / "cache"
    first = fetch(uri, "demo", None, cache)
    assert (first.version, first.copied, first.reused) == (3, 2, 0)
    assert (cache / "demo" / "3" / "extra" / "notes.txt").read_bytes() == b"hello"
    again = fetch(uri, "demo", None, cache)
    assert (again.copied, again.reused) == (0, 2)
    client.put_object(Bucket=bucket, Key="demo/3/extra/notes.txt", Body=b"HELLO")
    changed = fetch(uri, "demo", None, cache)
    assert (changed.copied, changed.reused) == (1, 1)
    assert (cache / "demo" / "3" / "extra" / "notes.txt").read_bytes() == b"HELLO"


def test_server_serves_from_s3_with_aws_variable_fallback(s3_models, serve):
    uri, env, _, _ = s3_models
    aws_env = {
        "AWS_ENDPOINT_URL": env["IMM_S3_ENDPOINT"],
        "AWS_ACCESS_KEY_ID": env["IMM_S3_ACCESS_KEY"],
        "AWS_SECRET_ACCESS_KEY": env["IMM_S3_SECRET_KEY"],
        "AWS_REGION": env["IMM_S3_REGION"],
    }
    server = serve(uri, env=aws_env)
    a = np.ones((1, 3), np.float32)
    reply = server.stub.Predict(predict_request({"a": a, "b": a}), timeout=30)
    assert reply.model_spec.version.value == 3
    np.testing.assert_array_equal(to_ndarray(reply.outputs["sum"]), a * 2)
