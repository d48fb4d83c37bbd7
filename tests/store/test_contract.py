"""The model store contract, run against the filesystem store and a real S3 server."""

from __future__ import annotations

import base64
import hashlib
import os
import tracemalloc
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from imm.domain.checksums import crc32_b64
from imm.domain.errors import InvalidInput, NotFound
from imm.store.base import MIN_PART_SIZE, Checksums, ModelStore

MiB = 1024 * 1024
TENANT, OTHER = "acme", "globex"
KEY = "resnet/1/saved_model.pb"


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def multipart_etag(parts: list[bytes]) -> str:
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def chunked(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    """How the API hands a request body over: in pieces, never whole."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def read(store: ModelStore, tenant: str, key: str) -> bytes:
    with store.open_object(tenant, key) as f:
        return f.read()


def upload(store: ModelStore, tenant: str, key: str, parts: list[bytes]) -> str:
    upload_id = store.start_upload(tenant, key)
    done = []
    for number, data in enumerate(parts, start=1):
        info = store.put_part(tenant, key, upload_id, number, chunked(data), size=len(data))
        done.append((number, info.etag))
    return store.complete_upload(tenant, key, upload_id, done).etag


@pytest.fixture
def bucket(store: ModelStore) -> str:
    store.create_bucket(TENANT)
    return TENANT


def test_buckets_are_created_and_deleted_idempotently(store: ModelStore) -> None:
    assert not store.bucket_exists(TENANT)
    store.create_bucket(TENANT)
    store.create_bucket(TENANT)
    assert store.bucket_exists(TENANT)
    assert not store.bucket_exists(OTHER)
    store.delete_bucket(TENANT)
    store.delete_bucket(TENANT)
    assert not store.bucket_exists(TENANT)


def test_delete_bucket_removes_objects_and_open_uploads(store: ModelStore, bucket: str) -> None:
    upload(store, bucket, KEY, [b"model"])
    open_id = store.start_upload(bucket, "resnet/2/saved_model.pb")
    store.put_part(bucket, "resnet/2/saved_model.pb", open_id, 1, [b"half"])
    store.delete_bucket(bucket)
    assert not store.bucket_exists(bucket)
    store.create_bucket(bucket)
    assert list(store.list_objects(bucket)) == []
    assert store.list_open_uploads(bucket) == []


def test_tenants_are_isolated(store: ModelStore, bucket: str) -> None:
    store.create_bucket(OTHER)
    upload(store, TENANT, KEY, [b"acme's model"])
    assert [o.key for o in store.list_objects(TENANT)] == [KEY]
    assert list(store.list_objects(OTHER)) == []
    with pytest.raises(NotFound):
        store.open_object(OTHER, KEY)
    upload_id = store.start_upload(TENANT, "resnet/2/f")
    with pytest.raises(NotFound):
        store.put_part(OTHER, "resnet/2/f", upload_id, 1, [b"x"])
    with pytest.raises(NotFound):
        store.list_parts(OTHER, "resnet/2/f", upload_id)
    store.delete_bucket(OTHER)
    assert read(store, TENANT, KEY) == b"acme's model"


def test_multipart_upload_reads_back_identical(store: ModelStore, bucket: str) -> None:
    parts = [os.urandom(5 * MiB) for _ in range(3)] + [os.urandom(123_457)]
    upload_id = store.start_upload(bucket, KEY)
    infos = [
        store.put_part(bucket, KEY, upload_id, n, chunked(p), size=len(p))
        for n, p in enumerate(parts, start=1)
    ]
    assert [(i.number, i.size, i.etag) for i in infos] == [
        (n, len(p), md5_etag(p)) for n, p in enumerate(parts, start=1)
    ]
    done = store.complete_upload(bucket, KEY, upload_id, [(i.number, i.etag) for i in infos])
    whole = b"".join(parts)
    assert (done.key, done.size, done.etag) == (KEY, len(whole), multipart_etag(parts))
    assert read(store, bucket, KEY) == whole
    [listed] = store.list_objects(bucket)
    assert (listed.key, listed.size, listed.etag) == (KEY, len(whole), multipart_etag(parts))
    assert store.list_open_uploads(bucket) == []


def test_parts_can_be_listed_and_resent_to_resume(store: ModelStore, bucket: str) -> None:
    first, third = os.urandom(MIN_PART_SIZE), os.urandom(1000)
    upload_id = store.start_upload(bucket, KEY)
    store.put_part(bucket, KEY, upload_id, 1, chunked(first))
    store.put_part(bucket, KEY, upload_id, 3, chunked(third))
    listed = store.list_parts(bucket, KEY, upload_id)
    assert [(p.number, p.size, p.etag) for p in listed] == [
        (1, len(first), md5_etag(first)),
        (3, len(third), md5_etag(third)),
    ]
    [open_upload] = store.list_open_uploads(bucket)
    assert (open_upload.key, open_upload.upload_id) == (KEY, upload_id)
    assert open_upload.initiated.tzinfo is not None
    second = os.urandom(MIN_PART_SIZE)
    store.put_part(bucket, KEY, upload_id, 2, chunked(second))
    store.put_part(bucket, KEY, upload_id, 1, chunked(first))  # resent after an interruption
    parts = store.list_parts(bucket, KEY, upload_id)
    assert [p.etag for p in parts] == [md5_etag(first), md5_etag(second), md5_etag(third)]
    store.complete_upload(bucket, KEY, upload_id, [(p.number, p.etag) for p in parts])
    assert read(store, bucket, KEY) == first + second + third


def test_a_resent_part_replaces_the_earlier_one(store: ModelStore, bucket: str) -> None:
    old, new, tail = os.urandom(MIN_PART_SIZE), os.urandom(MIN_PART_SIZE), b"tail"
    upload_id = store.start_upload(bucket, KEY)
    store.put_part(bucket, KEY, upload_id, 1, chunked(old))
    replaced = store.put_part(bucket, KEY, upload_id, 1, chunked(new))
    last = store.put_part(bucket, KEY, upload_id, 2, [tail])
    assert [p.number for p in store.list_parts(bucket, KEY, upload_id)] == [1, 2]
    store.complete_upload(bucket, KEY, upload_id, [(1, replaced.etag), (2, last.etag)])
    assert read(store, bucket, KEY) == new + tail


def test_correct_checksums_are_accepted(store: ModelStore, bucket: str) -> None:
    data = os.urandom(100_000)
    upload_id = store.start_upload(bucket, KEY)
    info = store.put_part(
        bucket,
        KEY,
        upload_id,
        1,
        chunked(data),
        size=len(data),
        checksums=Checksums(
            md5=b64(hashlib.md5(data).digest()),
            sha256=b64(hashlib.sha256(data).digest()),
            crc32=crc32_b64(zlib.crc32(data)),
        ),
    )
    assert info.etag == md5_etag(data)


@pytest.mark.parametrize("which", ["md5", "sha256", "crc32", "size", "bad base64"])
def test_checksum_mismatch_keeps_nothing(store: ModelStore, bucket: str, which: str) -> None:
    good, data = os.urandom(1000), os.urandom(MIN_PART_SIZE)
    upload_id = store.start_upload(bucket, KEY)
    store.put_part(bucket, KEY, upload_id, 1, [good])
    wrong = {
        "md5": {"checksums": Checksums(md5=b64(hashlib.md5(b"other").digest()))},
        "sha256": {"checksums": Checksums(sha256=b64(hashlib.sha256(b"other").digest()))},
        "crc32": {"checksums": Checksums(crc32=crc32_b64(zlib.crc32(b"other")))},
        "size": {"size": len(data) + 1},
        "bad base64": {"checksums": Checksums(md5="not base64!")},
    }[which]
    for number in (1, 2):  # neither replaces part 1 nor adds part 2
        with pytest.raises(InvalidInput):
            store.put_part(bucket, KEY, upload_id, number, chunked(data), **wrong)
    assert [(p.number, p.etag) for p in store.list_parts(bucket, KEY, upload_id)] == [
        (1, md5_etag(good))
    ]


def test_abort_leaves_nothing(store: ModelStore, bucket: str) -> None:
    upload_id = store.start_upload(bucket, KEY)
    store.put_part(bucket, KEY, upload_id, 1, [os.urandom(MIN_PART_SIZE)])
    store.put_part(bucket, KEY, upload_id, 2, [b"tail"])
    store.abort_upload(bucket, KEY, upload_id)
    assert store.list_open_uploads(bucket) == []
    assert list(store.list_objects(bucket)) == []
    with pytest.raises(NotFound):
        store.list_parts(bucket, KEY, upload_id)
    with pytest.raises(NotFound):
        store.complete_upload(bucket, KEY, upload_id, [(1, '"x"')])
    if hasattr(store, "root"):  # the filesystem store leaves no staging files either
        leftovers = [p for p in Path(store.root).rglob("*") if p.is_file()]
        assert leftovers == []


def test_object_is_invisible_until_complete(store: ModelStore, bucket: str) -> None:
    upload_id = store.start_upload(bucket, KEY)
    store.put_part(bucket, KEY, upload_id, 1, [b"all of it"])
    assert list(store.list_objects(bucket)) == []
    assert list(store.list_objects(bucket, "resnet/")) == []
    with pytest.raises(NotFound):
        store.open_object(bucket, KEY)
    assert store.download_prefix(bucket, "resnet/1/", Path("/nonexistent-dest")) == []
    [info] = store.list_parts(bucket, KEY, upload_id)
    store.complete_upload(bucket, KEY, upload_id, [(1, info.etag)])
    assert [o.key for o in store.list_objects(bucket)] == [KEY]


def test_completion_is_checked(store: ModelStore, bucket: str) -> None:
    small, tail = os.urandom(1000), os.urandom(10)
    upload_id = store.start_upload(bucket, KEY)
    one = store.put_part(bucket, KEY, upload_id, 1, [small])
    two = store.put_part(bucket, KEY, upload_id, 2, [tail])
    bad_lists = [
        [],
        [(1, md5_etag(b"wrong"))],
        [(1, one.etag), (3, two.etag)],
        [(2, two.etag), (1, one.etag)],
        [(1, one.etag), (1, one.etag)],
        [(1, one.etag), (2, two.etag)],  # part 1 is below the minimum part size
        [(0, one.etag)],
    ]
    for parts in bad_lists:
        with pytest.raises(InvalidInput):
            store.complete_upload(bucket, KEY, upload_id, parts)
    assert list(store.list_objects(bucket)) == []
    store.complete_upload(bucket, KEY, upload_id, [(1, one.etag.strip('"'))])  # bare ETag
    assert read(store, bucket, KEY) == small


def test_unknown_uploads_are_not_found(store: ModelStore, bucket: str) -> None:
    real = store.start_upload(bucket, KEY)
    for upload_id, key in [("0" * 32, KEY), ("no-such-upload", KEY), (real, "resnet/1/other")]:
        with pytest.raises(NotFound):
            store.put_part(bucket, key, upload_id, 1, [b"x"])
        with pytest.raises(NotFound):
            store.list_parts(bucket, key, upload_id)
        with pytest.raises(NotFound):
            store.complete_upload(bucket, key, upload_id, [(1, md5_etag(b"x"))])
        with pytest.raises(NotFound):
            store.abort_upload(bucket, key, upload_id)
    assert store.list_parts(bucket, KEY, real) == []


def test_missing_bucket_is_not_found(store: ModelStore) -> None:
    with pytest.raises(NotFound):
        store.start_upload(TENANT, KEY)
    with pytest.raises(NotFound):
        list(store.list_objects(TENANT))
    with pytest.raises(NotFound):
        store.open_object(TENANT, KEY)


@pytest.mark.parametrize("key", ["../escape", "/abs/key", "a\\b", "a//b", "a\x00b", ""])
def test_bad_keys_touch_nothing(store: ModelStore, bucket: str, key: str) -> None:
    with pytest.raises(InvalidInput):
        store.start_upload(bucket, key)
    with pytest.raises(InvalidInput):
        store.open_object(bucket, key)
    with pytest.raises(InvalidInput):
        store.delete_prefix(bucket, key or "/")
    assert store.list_open_uploads(bucket) == []


@pytest.mark.parametrize("tenant", ["../x", "UPPER", "a", ".uploads"])
def test_bad_tenant_names_are_refused(store: ModelStore, tenant: str) -> None:
    with pytest.raises(InvalidInput):
        store.create_bucket(tenant)
    with pytest.raises(InvalidInput):
        store.bucket_exists(tenant)


def test_part_numbers_outside_1_to_10000_are_refused(store: ModelStore, bucket: str) -> None:
    upload_id = store.start_upload(bucket, KEY)
    for number in (0, -1, 10_001):
        with pytest.raises(InvalidInput):
            store.put_part(bucket, KEY, upload_id, number, [b"x"])
    assert store.list_parts(bucket, KEY, upload_id) == []


def test_delete_prefix_deletes_one_version(store: ModelStore, bucket: str) -> None:
    for key in ["m-1/1/a", "m-1/1/sub/b", "m-1/10/c", "m-2/1/a"]:
        upload(store, bucket, key, [key.encode()])
    assert store.delete_prefix(bucket, "m-1/1/") == 2
    assert [o.key for o in store.list_objects(bucket)] == ["m-1/10/c", "m-2/1/a"]
    assert store.delete_prefix(bucket, "m-1/1/") == 0
    assert [o.key for o in store.list_objects(bucket, "m-1/1")] == ["m-1/10/c"]


def test_download_prefix_keeps_relative_paths(
    store: ModelStore, bucket: str, tmp_path: Path
) -> None:
    big = os.urandom(MIN_PART_SIZE)
    files = {"saved_model.pb": b"graph", "variables/variables.index": b"index"}
    for name, data in files.items():
        upload(store, bucket, f"resnet/1/{name}", [data])
    upload(store, bucket, "resnet/1/variables/variables.data", [big, b"tail"])
    upload(store, bucket, "resnet/10/other", [b"not me"])
    dest = tmp_path / "model"
    written = store.download_prefix(bucket, "resnet/1/", dest)
    assert sorted(written) == sorted(dest / n for n in [*files, "variables/variables.data"])
    for name, data in files.items():
        assert (dest / name).read_bytes() == data
    assert (dest / "variables/variables.data").read_bytes() == big + b"tail"
    assert sorted(p.name for p in dest.rglob("*")) == sorted(
        ["saved_model.pb", "variables", "variables.index", "variables.data"]
    )


def test_completing_again_replaces_the_object(store: ModelStore, bucket: str) -> None:
    upload(store, bucket, KEY, [b"old"])
    upload(store, bucket, KEY, [b"new"])
    assert read(store, bucket, KEY) == b"new"
    assert [o.size for o in store.list_objects(bucket)] == [3]


def test_concurrent_uploads_of_two_versions(store: ModelStore, bucket: str) -> None:
    versions = {
        f"resnet/{v}/weights.bin": [os.urandom(MIN_PART_SIZE) for _ in range(3)] + [b"end"]
        for v in (1, 2)
    }
    ids = {key: store.start_upload(bucket, key) for key in versions}
    jobs = [(key, n, data) for key, parts in versions.items() for n, data in enumerate(parts, 1)]

    def send(job: tuple[str, int, bytes]) -> tuple[str, int, str]:
        key, number, data = job
        return key, number, store.put_part(bucket, key, ids[key], number, chunked(data)).etag

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(send, jobs[::-1]))
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(
            pool.map(
                lambda key: store.complete_upload(
                    bucket, key, ids[key], sorted((n, e) for k, n, e in results if k == key)
                ),
                versions,
            )
        )
    assert {d.key: d.etag for d in done} == {k: multipart_etag(p) for k, p in versions.items()}
    for key, parts in versions.items():
        assert read(store, bucket, key) == b"".join(parts)


def test_put_part_memory_stays_flat(store: ModelStore, bucket: str) -> None:
    """A 64 MiB part sent in 1 MiB chunks never needs more than a few MiB at once."""
    chunk = os.urandom(MiB)
    upload_id = store.start_upload(bucket, KEY)
    tracemalloc.start()
    try:
        store.put_part(bucket, KEY, upload_id, 1, (chunk for _ in range(64)), size=64 * MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB
    assert store.list_parts(bucket, KEY, upload_id)[0].size == 64 * MiB


# -- uploads that announce their part size (the filesystem store writes those in place) ---


def put_all(
    store: ModelStore, upload_id: str, parts: dict[int, bytes], workers: int = 4
) -> list[tuple[int, str]]:
    def send(item: tuple[int, bytes]) -> tuple[int, str]:
        number, data = item
        return number, store.put_part(
            TENANT, KEY, upload_id, number, chunked(data), size=len(data)
        ).etag

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return sorted(pool.map(send, parts.items()))


def test_sized_upload_in_any_order_reads_back(store: ModelStore, bucket: str) -> None:
    parts = {n: os.urandom(MIN_PART_SIZE) for n in range(1, 5)} | {5: os.urandom(777)}
    upload_id = store.start_upload(bucket, KEY, part_size=MIN_PART_SIZE)
    done = put_all(store, upload_id, dict(reversed(parts.items())))
    info = store.complete_upload(bucket, KEY, upload_id, done)
    assert info.etag == multipart_etag(list(parts.values()))
    assert read(store, bucket, KEY) == b"".join(parts.values())


def test_sized_upload_resent_and_refused_parts(store: ModelStore, bucket: str) -> None:
    one, two, two_again, three = (os.urandom(MIN_PART_SIZE) for _ in range(4))
    upload_id = store.start_upload(bucket, KEY, part_size=MIN_PART_SIZE)
    with pytest.raises(InvalidInput):  # a refused first attempt leaves its slot reusable
        store.put_part(
            bucket, KEY, upload_id, 1, chunked(one), checksums=Checksums(md5=b64(b"x" * 16))
        )
    put_all(store, upload_id, {1: one, 2: two, 3: three})
    with pytest.raises(InvalidInput):  # a refused resend leaves the recorded part intact
        store.put_part(bucket, KEY, upload_id, 2, chunked(two_again), size=len(two_again) - 1)
    assert read_parts(store, upload_id) == [md5_etag(one), md5_etag(two), md5_etag(three)]
    done = put_all(store, upload_id, {2: two_again})
    parts = [(1, md5_etag(one)), *done, (3, md5_etag(three))]
    store.complete_upload(bucket, KEY, upload_id, parts)
    assert read(store, bucket, KEY) == one + two_again + three


def read_parts(store: ModelStore, upload_id: str) -> list[str]:
    return [p.etag for p in store.list_parts(TENANT, KEY, upload_id)]


@pytest.mark.parametrize(
    ("sizes", "numbers"),
    [
        ([6 * MiB, 6 * MiB, 100], [1, 2, 3]),  # larger than announced
        ([MIN_PART_SIZE, MIN_PART_SIZE, 100], [1, 3, 7]),  # gaps in the numbering
        ([MIN_PART_SIZE + 1, MIN_PART_SIZE, 100], [1, 2, 3]),  # mixed sizes
    ],
    ids=["larger", "gaps", "mixed"],
)
def test_sized_upload_with_other_parts_still_works(
    store: ModelStore, bucket: str, sizes: list[int], numbers: list[int]
) -> None:
    parts = {n: os.urandom(s) for n, s in zip(numbers, sizes, strict=True)}
    upload_id = store.start_upload(bucket, KEY, part_size=MIN_PART_SIZE)
    store.put_part(bucket, KEY, upload_id, 9, [b"not used"])
    done = put_all(store, upload_id, parts)
    store.complete_upload(bucket, KEY, upload_id, done)
    assert read(store, bucket, KEY) == b"".join(parts.values())


def test_sized_upload_of_one_small_part(store: ModelStore, bucket: str) -> None:
    upload_id = store.start_upload(bucket, KEY, part_size=MIN_PART_SIZE)
    done = put_all(store, upload_id, {1: b"tiny"})
    store.complete_upload(bucket, KEY, upload_id, done)
    assert read(store, bucket, KEY) == b"tiny"
    upload_id = store.start_upload(bucket, "resnet/1/empty", part_size=MIN_PART_SIZE)
    info = store.put_part(bucket, "resnet/1/empty", upload_id, 1, [], size=0)
    store.complete_upload(bucket, "resnet/1/empty", upload_id, [(1, info.etag)])
    assert read(store, bucket, "resnet/1/empty") == b""
