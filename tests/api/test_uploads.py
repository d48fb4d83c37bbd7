"""Model upload through the real API into each real store (filesystem, SeaweedFS S3)."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fixtures.pki import ca_pem
from fixtures.platform import Platform
from fixtures.seaweed import S3Server

from imm.client import ApiError, Client
from imm.config import Settings
from imm.domain.checksums import crc32_b64
from imm.store import ModelStore, open_store

MiB = 1024 * 1024


@pytest.fixture(scope="module", params=["fs", "s3"])
def store_platform(
    request: pytest.FixtureRequest, make_platform: Callable[..., Platform]
) -> Platform:
    if request.param == "fs":
        return make_platform()
    seaweed: S3Server = request.getfixturevalue("seaweed")
    return make_platform(**seaweed.env(seaweed.unique_prefix()))


def platform_store(platform: Platform) -> ModelStore:
    """The same store the platform uses, opened by the test to check what really landed."""
    settings = {k[4:].lower(): v for k, v in platform.env.items() if k.startswith("IMM_S")}
    return open_store(Settings(data_dir=Path(platform.env["IMM_DATA_DIR"]), **settings))


def make_tenant(platform: Platform, name: str) -> Client:
    """Creates the tenant and a member; returns an SDK client logged in as the member."""
    with platform.client() as admin:
        response = admin.post("/tenants", json={"name": name, "cert": ca_pem(), "scope": name})
        assert response.status_code == 201, response.text
    platform.add_user(f"{name}-user", name)
    return Client(platform.url, platform.token(f"{name}-user"))


def upload(
    client: Client,
    tenant: str,
    model: str,
    version: int,
    data: bytes,
    file_name: str = "model.onnx",
    key: str | None = None,
    part_size: int = 5 * MiB,
) -> dict:
    upload_id = client.upload_start(tenant, model, version, file_name, key)
    parts = []
    for number, offset in enumerate(range(0, max(len(data), 1), part_size), start=1):
        answer = client.upload_part(tenant, upload_id, number, data[offset : offset + part_size])
        parts.append((number, answer["ETag"]))
    return client.upload_done(tenant, upload_id, parts)


def read_back(store: ModelStore, tenant: str, key: str) -> bytes:
    with store.open_object(tenant, key) as f:
        return f.read()


def test_multipart_upload_is_listed_and_reads_back_identical(store_platform: Platform) -> None:
    client = make_tenant(store_platform, "up-multi")
    data = os.urandom(3 * 5 * MiB + 123_457)
    upload_id = client.upload_start("up-multi", "resnet", 1, "model.onnx")
    etags = []
    for number in range(1, 5):
        chunk = data[(number - 1) * 5 * MiB : number * 5 * MiB]
        md5 = base64.b64encode(hashlib.md5(chunk).digest()).decode()
        answer = client.upload_part("up-multi", upload_id, number, chunk, md5_b64=md5)
        assert answer == {"ETag": f'"{hashlib.md5(chunk).hexdigest()}"', "partNumber": number}
        etags.append((number, answer["ETag"]))

        # Resume support: the parts received so far, with sizes and ETags.
        status = client.upload_status("up-multi", upload_id)
        assert [p["partNumber"] for p in status["parts"]] == list(range(1, number + 1))
        assert status["parts"][-1]["size"] == len(chunk)
        # Not listed while the upload is open.
        assert client.list_models("up-multi") == []

    done = client.upload_done("up-multi", upload_id, etags)
    assert done["size"] == len(data)
    assert done["key"] == "resnet/1/model.onnx"
    listed = client.list_models("up-multi")
    assert [(m["name"], m["version"], m["size"], m["files"]) for m in listed] == [
        ("resnet", 1, len(data), 1)
    ]
    assert read_back(platform_store(store_platform), "up-multi", "resnet/1/model.onnx") == data
    with pytest.raises(ApiError) as gone:
        client.upload_status("up-multi", upload_id)
    assert gone.value.status == 404


def test_directory_version_appears_only_when_every_file_completes(
    store_platform: Platform,
) -> None:
    client = make_tenant(store_platform, "up-dir")
    files = {
        (None, "saved_model.pb"): os.urandom(1000),
        ("variables", "variables.index"): os.urandom(200),
        ("variables", "variables.data-00000-of-00001"): os.urandom(6 * MiB),
    }
    ids = {name: client.upload_start("up-dir", "saved", 3, name[1], name[0]) for name in files}
    for n, name in enumerate(files):
        data = files[name]
        etag = client.upload_part("up-dir", ids[name], 1, data)["ETag"]
        client.upload_done("up-dir", ids[name], [(1, etag)])
        listed = client.list_models("up-dir")
        if n < len(files) - 1:
            assert listed == [], "a version must not be listed while a file of it is open"
    assert [(m["version"], m["files"]) for m in client.list_models("up-dir")] == [(3, 3)]
    detail = client.get_model("up-dir", "saved")
    assert detail["versions"][0]["paths"] == [
        "saved_model.pb",
        "variables/variables.data-00000-of-00001",
        "variables/variables.index",
    ]
    store = platform_store(store_platform)
    key = "saved/3/variables/variables.data-00000-of-00001"
    assert read_back(store, "up-dir", key) == files[("variables", "variables.data-00000-of-00001")]

    # A complete version is never written into again ...
    with pytest.raises(ApiError) as again:
        client.upload_start("up-dir", "saved", 3, "extra.txt")
    assert again.value.status == 409
    # ... until it is deleted.
    client.delete_model_version("up-dir", "saved", 3)
    assert client.list_models("up-dir") == []
    assert list(store.list_objects("up-dir", "saved/3/")) == []
    with pytest.raises(ApiError) as missing:
        client.delete_model_version("up-dir", "saved", 3)
    assert missing.value.status == 404
    upload(client, "up-dir", "saved", 3, b"fresh")
    assert [m["size"] for m in client.list_models("up-dir")] == [5]


def test_abort_leaves_no_objects_and_no_version(store_platform: Platform) -> None:
    client = make_tenant(store_platform, "up-abort")
    upload_id = client.upload_start("up-abort", "bert", 2, "model.onnx")
    client.upload_part("up-abort", upload_id, 1, os.urandom(5 * MiB))
    client.upload_abort("up-abort", upload_id)
    store = platform_store(store_platform)
    assert client.list_models("up-abort") == []
    assert list(store.list_objects("up-abort")) == []
    assert store.list_open_uploads("up-abort") == []
    with pytest.raises(ApiError) as again:
        client.upload_abort("up-abort", upload_id)
    assert again.value.status == 404


def test_checksum_mismatch_is_refused_and_nothing_kept(store_platform: Platform) -> None:
    client = make_tenant(store_platform, "up-sum")
    upload_id = client.upload_start("up-sum", "m-sum", 1, "model.onnx")
    data = os.urandom(MiB)
    wrong_md5 = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    with pytest.raises(ApiError) as refused:
        client.upload_part("up-sum", upload_id, 1, data, md5_b64=wrong_md5)
    assert refused.value.status == 400
    wrong_sha = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with pytest.raises(ApiError) as refused_sha:
        client.request(
            "PUT",
            "/tenants/up-sum/upload",
            params={"uploadId": upload_id, "partNumber": 1},
            content=data,
            headers={"x-amz-checksum-sha256": wrong_sha},
        )
    assert refused_sha.value.status == 400
    wrong_crc = crc32_b64(zlib.crc32(b"other"))
    with pytest.raises(ApiError) as refused_crc:
        client.upload_part("up-sum", upload_id, 1, data, crc32_b64=wrong_crc)
    assert refused_crc.value.status == 400
    assert "x-amz-checksum-crc32" in refused_crc.value.detail
    assert client.upload_status("up-sum", upload_id)["parts"] == []
    good_sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
    client.request(
        "PUT",
        "/tenants/up-sum/upload",
        params={"uploadId": upload_id, "partNumber": 1},
        content=data,
        headers={"x-amz-checksum-sha256": good_sha},
    )
    assert [p["size"] for p in client.upload_status("up-sum", upload_id)["parts"]] == [MiB]
    answer = client.upload_part("up-sum", upload_id, 2, data, crc32_b64=crc32_b64(zlib.crc32(data)))
    assert answer["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'  # the ETag stays the MD5


BAD_STARTS = [
    ("model name upper case", {"modelName": "ResNet"}),
    ("model name too short", {"modelName": "ab"}),
    ("version zero", {"modelVersion": 0}),
    ("version negative", {"modelVersion": -3}),
    ("version text", {"modelVersion": "one"}),
    ("version fraction", {"modelVersion": 1.5}),
    ("file name with slash", {"fileName": "a/b.onnx"}),
    ("file name dot-dot", {"fileName": ".."}),
    ("file name backslash", {"fileName": "a\\b.onnx"}),
    ("file name control char", {"fileName": "a\nb.onnx"}),
    ("file name empty", {"fileName": ""}),
    ("file name too long", {"fileName": "x" * 300}),
    ("key traversal", {"key": "../../etc"}),
    ("key absolute", {"key": "/etc/passwd"}),
    ("key backslash", {"key": "variables\\x"}),
    ("key dot segment", {"key": "a/./b"}),
    ("key control char", {"key": "a\x00b"}),
    ("key too long", {"key": "/".join(["k" * 200] * 6)}),
    ("unknown field", {"bucket": "other-tenant"}),
]


@pytest.mark.parametrize(("case", "change"), BAD_STARTS, ids=[c[0] for c in BAD_STARTS])
def test_invalid_upload_start_is_400_and_stores_nothing(
    store_platform: Platform, case: str, change: dict
) -> None:
    tenant = "up-bad"
    with store_platform.client() as admin:
        if admin.get(f"/tenants/{tenant}").status_code == 404:
            make_tenant(store_platform, tenant)
    client = Client(store_platform.url, store_platform.token(f"{tenant}-user"))
    body = {"modelName": "good-model", "modelVersion": 1, "fileName": "model.onnx", **change}
    with pytest.raises(ApiError) as refused:
        client.json("POST", f"/tenants/{tenant}/upload/start", json=body)
    assert refused.value.status == 400, refused.value
    store = platform_store(store_platform)
    assert store.list_open_uploads(tenant) == []
    assert list(store.list_objects(tenant)) == []


def test_invalid_part_numbers_and_sizes(store_platform: Platform) -> None:
    client = make_tenant(store_platform, "up-parts")
    upload_id = client.upload_start("up-parts", "m-parts", 1, "model.onnx")
    for number in (0, -1, 10001, "abc"):
        with pytest.raises(ApiError) as refused:
            client.request(
                "PUT",
                "/tenants/up-parts/upload",
                params={"uploadId": upload_id, "partNumber": number},
                content=b"data",
            )
        assert refused.value.status == 400, number
    with pytest.raises(ApiError) as unknown:
        client.upload_part("up-parts", "no-such-upload", 1, b"data")
    assert unknown.value.status == 404

    # Over the 5000 MiB part limit: refused from the header alone, before any body is sent.
    host, port = store_platform.env["IMM_API_LISTEN"].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            (
                f"PUT /tenants/up-parts/upload?uploadId={upload_id}&partNumber=1 HTTP/1.1\r\n"
                f"Host: {host}\r\nAuthorization: Bearer {client._token(False)}\r\n"
                f"Content-Length: {5001 * MiB}\r\n\r\n"
            ).encode()
        )
        answer = sock.recv(4096).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "application/problem+json" in answer

    # Every part but the last must be at least 5 MiB.
    small = client.upload_part("up-parts", upload_id, 1, os.urandom(MiB))["ETag"]
    last = client.upload_part("up-parts", upload_id, 2, b"tail")["ETag"]
    with pytest.raises(ApiError) as too_small:
        client.upload_done("up-parts", upload_id, [(1, small), (2, last)])
    assert too_small.value.status == 400
    assert "5 MiB" in too_small.value.detail
    # Parts out of order, and an ETag that is not the part's.
    with pytest.raises(ApiError) as order:
        client.upload_done("up-parts", upload_id, [(2, last), (1, small)])
    assert order.value.status == 400
    with pytest.raises(ApiError) as etag:
        client.upload_done("up-parts", upload_id, [(1, '"' + "0" * 32 + '"')])
    assert etag.value.status == 400
    assert client.list_models("up-parts") == []


def test_same_file_cannot_be_opened_twice(store_platform: Platform) -> None:
    client = make_tenant(store_platform, "up-twice")
    client.upload_start("up-twice", "m-twice", 1, "model.onnx")
    with pytest.raises(ApiError) as twice:
        client.upload_start("up-twice", "m-twice", 1, "model.onnx")
    assert twice.value.status == 409


def test_concurrent_uploads_of_two_versions(store_platform: Platform) -> None:
    client = make_tenant(store_platform, "up-conc")
    payloads = {1: os.urandom(11 * MiB), 2: os.urandom(7 * MiB)}
    errors: list[BaseException] = []

    def run(version: int) -> None:
        try:
            with Client(store_platform.url, store_platform.token("up-conc-user")) as own:
                upload(own, "up-conc", "twins", version, payloads[version])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(v,)) for v in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    listed = {m["version"]: m["size"] for m in client.list_models("up-conc")}
    assert listed == {1: len(payloads[1]), 2: len(payloads[2])}
    store = platform_store(store_platform)
    for version, data in payloads.items():
        assert read_back(store, "up-conc", f"twins/{version}/model.onnx") == data


def test_another_tenants_member_gets_403_everywhere(store_platform: Platform) -> None:
    owner = make_tenant(store_platform, "up-own")
    make_tenant(store_platform, "up-other")
    upload(owner, "up-own", "secret", 1, b"weights")
    upload_id = owner.upload_start("up-own", "secret", 2, "model.onnx")
    intruder = httpx.Client(
        base_url=store_platform.url,
        headers={"Authorization": f"Bearer {store_platform.token('up-other-user')}"},
    )
    attempts = [
        ("GET", "/tenants/up-own/models", None, None),
        ("GET", "/tenants/up-own/models/secret", None, None),
        ("DELETE", "/tenants/up-own/models/secret/versions/1", None, None),
        ("POST", "/tenants/up-own/upload/start",
         {"modelName": "evil", "modelVersion": 1, "fileName": "x.onnx"}, None),
        ("PUT", "/tenants/up-own/upload", None, {"uploadId": upload_id, "partNumber": 1}),
        ("GET", f"/tenants/up-own/upload/{upload_id}", None, None),
        ("POST", "/tenants/up-own/upload/done",
         {"uploadId": upload_id, "parts": [{"PartNumber": 1, "ETag": "x"}]}, None),
        ("POST", "/tenants/up-own/upload/abort", {"uploadId": upload_id}, None),
    ]  # fmt: skip
    for method, path, body, params in attempts:
        kwargs = {"json": body} if body else {"content": b"x" * 10}
        response = intruder.request(method, path, params=params, **kwargs)
        assert response.status_code == 403, (method, path, response.text)
        assert "secret" not in response.text
    # And the other tenant's own upload route cannot reach it by id either.
    response = intruder.get(f"/tenants/up-other/upload/{upload_id}")
    assert response.status_code == 404
    assert [m["name"] for m in owner.list_models("up-own")] == ["secret"]
    assert owner.upload_status("up-own", upload_id)["parts"] == []


def test_deleting_a_tenant_removes_its_models(store_platform: Platform) -> None:
    client = make_tenant(store_platform, "up-gone")
    upload(client, "up-gone", "doomed", 1, b"weights")
    client.upload_start("up-gone", "doomed", 2, "model.onnx")
    store = platform_store(store_platform)
    assert store.bucket_exists("up-gone")
    with store_platform.client() as admin:
        assert admin.delete("/tenants/up-gone").status_code == 204
    assert not store.bucket_exists("up-gone")


def test_abandoned_uploads_expire(make_platform: Callable[..., Platform]) -> None:
    platform = make_platform(IMM_UPLOAD_EXPIRY_HOURS="0.0003", IMM_UPLOAD_GC_INTERVAL="0.5")
    client = make_tenant(platform, "up-expire")
    upload_id = client.upload_start("up-expire", "stale", 1, "model.onnx")
    client.upload_part("up-expire", upload_id, 1, os.urandom(MiB))
    store = platform_store(platform)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and store.list_open_uploads("up-expire"):
        time.sleep(0.5)
    assert store.list_open_uploads("up-expire") == []
    with pytest.raises(ApiError) as gone:
        client.upload_status("up-expire", upload_id)
    assert gone.value.status == 404
    assert client.list_models("up-expire") == []
