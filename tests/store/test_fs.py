"""What only the filesystem store promises: plain files, written once, nothing left over."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imm.domain.errors import Conflict, InvalidInput
from imm.store.base import MIN_PART_SIZE
from imm.store.fs import FilesystemStore

KEY = "resnet/1/variables/variables.data"


@pytest.fixture
def fs(tmp_path: Path) -> FilesystemStore:
    store = FilesystemStore(tmp_path / "store")
    store.create_bucket("acme")
    return store


def test_objects_are_plain_files_in_the_tenant_folder(fs: FilesystemStore) -> None:
    upload_id = fs.start_upload("acme", KEY)
    info = fs.put_part("acme", KEY, upload_id, 1, [b"weights"])
    fs.complete_upload("acme", KEY, upload_id, [(1, info.etag)])
    assert (fs.root / "acme" / KEY).read_bytes() == b"weights"
    assert sorted(p.name for p in (fs.root / "acme").rglob("*")) == [
        "1",
        "resnet",
        "variables",
        "variables.data",
    ]


def test_announced_part_size_means_no_copy(fs: FilesystemStore) -> None:
    """The parts are written where they belong; completing renames that very file."""
    parts = [os.urandom(MIN_PART_SIZE), os.urandom(MIN_PART_SIZE), b"tail"]
    upload_id = fs.start_upload("acme", KEY, part_size=MIN_PART_SIZE)
    done = [
        (n, fs.put_part("acme", KEY, upload_id, n, [p], size=len(p)).etag)
        for n, p in enumerate(parts, 1)
    ]
    data = fs.root / ".uploads" / "acme" / upload_id / "data"
    inode = data.stat().st_ino
    fs.complete_upload("acme", KEY, upload_id, done)
    target = fs.root / "acme" / KEY
    assert target.stat().st_ino == inode
    assert target.read_bytes() == b"".join(parts)
    assert not (fs.root / ".uploads" / "acme" / upload_id).exists()


def test_a_key_cannot_be_both_file_and_folder(fs: FilesystemStore) -> None:
    for key, clash in [("m-1/1/a", "m-1/1/a/b"), ("m-2/1/a/b", "m-2/1/a")]:
        upload_id = fs.start_upload("acme", key)
        fs.complete_upload(
            "acme", key, upload_id, [(1, fs.put_part("acme", key, upload_id, 1, [b"x"]).etag)]
        )
        upload_id = fs.start_upload("acme", clash)
        etag = fs.put_part("acme", clash, upload_id, 1, [b"y"]).etag
        with pytest.raises(Conflict):
            fs.complete_upload("acme", clash, upload_id, [(1, etag)])
        assert [p.etag for p in fs.list_parts("acme", clash, upload_id)] == [etag]


def test_part_size_hint_is_checked(fs: FilesystemStore) -> None:
    for bad in (0, -1, 5001 * 1024 * 1024):
        with pytest.raises(InvalidInput):
            fs.start_upload("acme", KEY, part_size=bad)
    assert fs.list_open_uploads("acme") == []


def test_delete_prefix_leaves_no_empty_folders(fs: FilesystemStore) -> None:
    for key in (KEY, "resnet/1/saved_model.pb", "resnet/2/saved_model.pb"):
        upload_id = fs.start_upload("acme", key)
        fs.complete_upload(
            "acme", key, upload_id, [(1, fs.put_part("acme", key, upload_id, 1, [b"x"]).etag)]
        )
    assert fs.delete_prefix("acme", "resnet/1/") == 2
    assert sorted(
        p.relative_to(fs.root / "acme").as_posix() for p in (fs.root / "acme").rglob("*")
    ) == [
        "resnet",
        "resnet/2",
        "resnet/2/saved_model.pb",
    ]
