"""``open_store`` picks the backend the settings describe."""

from pathlib import Path

from imm.config import Settings
from imm.store import open_store
from imm.store.fs import FilesystemStore
from imm.store.s3 import S3Store

S3 = {"s3_endpoint": "http://127.0.0.1:9", "s3_access_key": "a", "s3_secret_key": "b"}


def test_filesystem_is_the_default(tmp_path: Path) -> None:
    store = open_store(Settings(data_dir=tmp_path))
    assert isinstance(store, FilesystemStore)
    assert store.root == (tmp_path / "store").resolve()


def test_s3_when_asked_or_when_an_endpoint_is_configured(tmp_path: Path) -> None:
    explicit = open_store(Settings(data_dir=tmp_path, store="s3", s3_bucket_prefix="x-", **S3))
    assert isinstance(explicit, S3Store)
    assert explicit.bucket_name("acme") == "x-acme"
    assert isinstance(open_store(Settings(data_dir=tmp_path, **S3)), S3Store)


def test_an_explicit_fs_store_wins_over_s3_settings(tmp_path: Path) -> None:
    assert isinstance(open_store(Settings(data_dir=tmp_path, store="fs", **S3)), FilesystemStore)
