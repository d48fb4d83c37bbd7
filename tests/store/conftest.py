"""The ``store`` fixture: every contract test runs against both backends."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from imm.store.base import ModelStore
from imm.store.fs import FilesystemStore
from imm.store.s3 import S3Store


@pytest.fixture(params=["fs", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ModelStore]:
    if request.param == "fs":
        yield FilesystemStore(tmp_path / "store")
        return
    server = request.getfixturevalue("seaweed")
    prefix = server.unique_prefix()
    s3 = S3Store(
        endpoint=server.endpoint,
        access_key=server.access_key,
        secret_key=server.secret_key,
        region=server.region,
        bucket_prefix=prefix,
        spool_dir=tmp_path / "spool",
    )
    yield s3
    for bucket in s3.client.list_buckets().get("Buckets", []):
        if bucket["Name"].startswith(prefix):
            s3.delete_bucket(bucket["Name"].removeprefix(prefix))
