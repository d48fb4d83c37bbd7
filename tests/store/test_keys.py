"""Object keys and file names are refused before they touch storage."""

import pytest

from imm.domain.errors import InvalidInput
from imm.domain.keys import (
    MAX_KEY_BYTES,
    MAX_SEGMENT_BYTES,
    check_file_name,
    check_key,
    check_prefix,
    object_key,
    version_prefix,
)

BAD_KEYS = {
    "empty": "",
    "dot-dot": "../etc/passwd",
    "dot-dot inside": "a/../b",
    "dot-dot at end": "a/..",
    "dot segment": "a/./b",
    "only dot": ".",
    "absolute": "/etc/passwd",
    "backslash": "a\\b",
    "windows traversal": "..\\..\\x",
    "double slash": "a//b",
    "trailing slash": "a/b/",
    "newline": "a\nb",
    "nul": "a\x00b",
    "tab": "a\tb",
    "delete char": "a\x7fb",
    "c1 control": "a\x85b",
    "escape": "\x1b[31m",
    "lone surrogate": "a\udc80b",
    "long segment": "a/" + "x" * (MAX_SEGMENT_BYTES + 1),
    "long multibyte segment": "é" * (MAX_SEGMENT_BYTES // 2 + 1),
    "long key": "/".join(["y" * 200] * 6),
}


@pytest.mark.parametrize("value", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_bad_keys_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput):
        check_key(value)


@pytest.mark.parametrize("value", [None, 3, b"a/b", ["a"]])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidInput, match="must be a string"):
        check_key(value)


@pytest.mark.parametrize(
    "value",
    [
        "saved_model.pb",
        "variables/variables.data-00000-of-00001",
        "a/b/c/d.onnx",
        "..hidden",
        "name with spaces.txt",
        "ünïcödé/файл",
        "x" * MAX_SEGMENT_BYTES,
        "/".join(["y" * 200] * 5),
    ],
)
def test_good_keys_pass_unchanged(value: str) -> None:
    assert check_key(value) == value


def test_key_limit_counts_bytes() -> None:
    at_limit = "/".join(["z" * 254] * 4) + "/" + "z" * (MAX_KEY_BYTES - 4 * 255)
    assert len(at_limit.encode()) == MAX_KEY_BYTES
    assert check_key(at_limit) == at_limit
    with pytest.raises(InvalidInput, match="1024"):
        check_key(at_limit + "z")


def test_messages_say_what_is_wrong() -> None:
    with pytest.raises(InvalidInput, match=r"'\.\.'"):
        check_key("a/../b", "key")
    with pytest.raises(InvalidInput, match="backslash"):
        check_key("a\\b")
    with pytest.raises(InvalidInput, match="control"):
        check_key("a\nb")
    with pytest.raises(InvalidInput, match="relative"):
        check_key("/a")
    with pytest.raises(InvalidInput, match="empty segments"):
        check_key("a//b")


@pytest.mark.parametrize("value", ["a/b", "", "..", "a\\b", "/x", "x\n"])
def test_bad_file_names_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput):
        check_file_name(value)


def test_prefix_may_be_empty_or_end_with_slash() -> None:
    assert check_prefix("") == ""
    assert check_prefix("m/1/") == "m/1/"
    assert check_prefix("m/1") == "m/1"
    for bad in ("/", "../", "m//", "/m/"):
        with pytest.raises(InvalidInput):
            check_prefix(bad)


def test_object_key_is_model_version_key_file() -> None:
    assert object_key("resnet", 3, "saved_model.pb") == "resnet/3/saved_model.pb"
    assert object_key("resnet", "3", "v.data", key="variables") == "resnet/3/variables/v.data"
    assert object_key("resnet", 3, "f", key="") == "resnet/3/f"
    assert object_key("resnet", 3, "f", key="a/b") == "resnet/3/a/b/f"
    assert version_prefix("resnet", 3) == "resnet/3/"


@pytest.mark.parametrize(
    ("model", "version", "file_name", "key"),
    [
        ("Bad_Name", 1, "f", None),
        ("../x", 1, "f", None),
        ("ok-model", 0, "f", None),
        ("ok-model", -1, "f", None),
        ("ok-model", "1.0", "f", None),
        ("ok-model", True, "f", None),
        ("ok-model", 1, "../f", None),
        ("ok-model", 1, "a/f", None),
        ("ok-model", 1, "f", "../up"),
        ("ok-model", 1, "f", "/abs"),
        ("ok-model", 1, "f", "a\\b"),
        ("ok-model", 1, "f", "a//b"),
        ("ok-model", 1, "f", "a\x00"),
        ("ok-model", 1, "f" * 300, None),
        ("ok-model", 1, "f", "/".join(["k" * 250] * 5)),
    ],
)
def test_object_key_refuses_bad_parts(
    model: object, version: object, file_name: object, key: object
) -> None:
    with pytest.raises(InvalidInput):
        object_key(model, version, file_name, key)
