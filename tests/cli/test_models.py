"""``imm models`` and ``python -m imm.upload`` as a user runs them, against the real platform
on each real store (filesystem, SeaweedFS S3): uploads of files, trees and archives,
resume after a killed CLI, abort on Ctrl-C, refusals, and the other commands."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fixtures.pki import ca_pem
from fixtures.platform import USER_PASSWORD, Platform
from fixtures.seaweed import S3Server

from imm.client import Client
from imm.config import Settings
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
    """The store the platform uses, opened by the test to check what really landed."""
    settings = {k[4:].lower(): v for k, v in platform.env.items() if k.startswith("IMM_S")}
    return open_store(Settings(data_dir=Path(platform.env["IMM_DATA_DIR"]), **settings))


@dataclass
class Member:
    """A tenant member logged in with the real CLI, with a config and journal of its own."""

    platform: Platform
    tenant: str
    user: str
    home: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            **self.platform.env,
            "IMM_CONFIG": str(self.home / "config.json"),
            "IMM_UPLOAD_JOURNAL_DIR": str(self.journal_dir),
            "COLUMNS": "400",  # rich wraps messages at the width, even into a pipe
        }

    @property
    def journal_dir(self) -> Path:
        return self.home / "journal"

    def imm(self, *args: str, module: str = "imm") -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", module, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "imm", *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def sdk(self) -> Client:
        return Client(self.platform.url, self.platform.token(self.user))

    def upload_json(self, *args: str) -> dict[str, Any]:
        result = self.imm("models", "upload", *args, "-o", "json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def listed(self) -> dict[tuple[str, int], dict[str, Any]]:
        result = self.imm("models", "list", "-o", "json")
        assert result.returncode == 0, result.stderr
        return {(m["name"], m["version"]): m for m in json.loads(result.stdout)}


def new_member(platform: Platform, home: Path, tenant: str) -> Member:
    with platform.client() as admin:
        if admin.get(f"/tenants/{tenant}").status_code == 404:
            response = admin.post(
                "/tenants", json={"name": tenant, "cert": ca_pem(), "scope": tenant}
            )
            assert response.status_code == 201, response.text
    user = f"{tenant}-user"
    platform.add_user(user, tenant)
    member = Member(platform, tenant, user, home)
    login = member.imm("login", "--api", platform.url, "-u", user, "-p", USER_PASSWORD)
    assert login.returncode == 0, login.stderr
    return member


@pytest.fixture(scope="module")
def member(store_platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Member:
    return new_member(store_platform, tmp_path_factory.mktemp("member"), "team-m")


def flat(text: str) -> str:
    """Messages as one line: rich wraps them at the terminal width."""
    return " ".join(text.split())


def read_back(platform: Platform, tenant: str, key: str) -> bytes:
    with platform_store(platform).open_object(tenant, key) as f:
        return f.read()


def nothing_stored(member: Member, model: str) -> None:
    store = platform_store(member.platform)
    assert store.list_open_uploads(member.tenant, f"{model}/") == []
    assert list(store.list_objects(member.tenant, f"{model}/")) == []
    assert not [k for k in member.listed() if k[0] == model]


def saved_model_tree(root: Path) -> dict[str, bytes]:
    files = {
        "saved_model.pb": os.urandom(2000),
        "variables/variables.index": os.urandom(300),
        "variables/variables.data-00000-of-00001": os.urandom(6 * MiB + 7),
        "assets/vocab/words.txt": b"hello\nworld\n",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_multipart_file_is_listed_and_reads_back_identical(member: Member, tmp_path: Path) -> None:
    data = os.urandom(3 * 5 * MiB + 123_457)
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    result = member.upload_json(str(path), "resnet", "1", "--part", "5")
    assert (result["parts_sent"], result["parts_skipped"], result["files"]) == (4, 0, 1)
    assert result["size"] == len(data)
    assert member.listed()[("resnet", 1)]["size"] == len(data)
    assert read_back(member.platform, member.tenant, "resnet/1/model.onnx") == data
    assert list(member.journal_dir.glob("*.json")) == []

    again = member.imm("models", "upload", str(path), "resnet", "1")
    assert again.returncode != 0
    assert "already exists" in flat(again.stderr)


def test_directory_is_uploaded_as_a_tree_of_keys(member: Member, tmp_path: Path) -> None:
    root = tmp_path / "saved_model"
    files = saved_model_tree(root)
    result = member.upload_json(str(root), "saved", "3")
    assert result["files"] == len(files)
    view = member.imm("models", "view", "saved", "-o", "json")
    assert view.returncode == 0, view.stderr
    [version] = json.loads(view.stdout)["versions"]
    assert version["paths"] == sorted(files)
    assert version["size"] == sum(len(d) for d in files.values())
    for rel, data in files.items():
        assert read_back(member.platform, member.tenant, f"saved/3/{rel}") == data
    table = member.imm("models", "view", "saved")
    assert table.returncode == 0 and "saved_model.pb" in table.stdout


def test_archives_are_unpacked_first(member: Member, tmp_path: Path) -> None:
    files = saved_model_tree(tmp_path / "tree" / "my_model")
    tgz = tmp_path / "model.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:  # one top folder: uploaded from inside it
        tar.add(tmp_path / "tree" / "my_model", arcname="my_model")
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as z:  # no top folder
        for rel, data in files.items():
            z.writestr(rel, data)
    for number, path in ((1, tgz), (2, archive)):
        member.upload_json(str(path), "packed", str(number))
        for rel, data in files.items():
            assert read_back(member.platform, member.tenant, f"packed/{number}/{rel}") == data
    listed = member.listed()
    assert listed[("packed", 1)]["files"] == listed[("packed", 2)]["files"] == len(files)


def test_unsafe_archives_are_refused_and_nothing_stored(member: Member, tmp_path: Path) -> None:
    evil_tar = tmp_path / "evil.tar.gz"
    with tarfile.open(evil_tar, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    evil_zip = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil_zip, "w") as z:
        z.writestr("model/../../escaped.txt", b"evil")
    for path in (evil_tar, evil_zip):
        result = member.imm("models", "upload", str(path), "unsafe", "1")
        assert result.returncode != 0
        assert "escaped.txt" in flat(result.stderr), result.stderr
    assert not (tmp_path.parent / "escaped.txt").exists()
    nothing_stored(member, "unsafe")


def wait_for_journal(member: Member, proc: subprocess.Popen[str]) -> dict[str, Any]:
    """Stops the CLI (SIGSTOP) as soon as it has recorded its upload ids."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = list(member.journal_dir.glob("*.json")) if member.journal_dir.exists() else []
        if found:
            proc.send_signal(signal.SIGSTOP)
            return json.loads(found[0].read_text())
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.005)
    raise AssertionError("the CLI wrote no journal")


def step_until_parts(
    member: Member, proc: subprocess.Popen[str], upload_id: str, at_least: int
) -> list[dict[str, Any]]:
    """Lets the stopped CLI run in short slices until the server holds ``at_least`` parts;
    leaves it stopped."""
    with member.sdk() as sdk:
        while True:
            parts = sdk.upload_status(member.tenant, upload_id)["parts"]
            if len(parts) >= at_least:
                return parts
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.02)
            proc.send_signal(signal.SIGSTOP)


def settled_parts(member: Member, upload_id: str) -> list[dict[str, Any]]:
    """The server's part list once a part that was in flight has landed or been dropped."""
    with member.sdk() as sdk:
        previous = None
        while True:
            parts = sdk.upload_status(member.tenant, upload_id)["parts"]
            if parts == previous:
                return parts
            previous = parts
            time.sleep(0.5)


def test_resume_after_the_cli_is_killed_sends_only_missing_parts(
    member: Member, tmp_path: Path
) -> None:
    data = os.urandom(60 * MiB)
    path = tmp_path / "big.onnx"
    path.write_bytes(data)
    args = ("models", "upload", str(path), "killed", "1", "--part", "5", "--parallel", "1")
    proc = member.start(*args)
    try:
        journal = wait_for_journal(member, proc)
        [entry] = journal["files"].values()
        parts = step_until_parts(member, proc, entry["upload_id"], 2)
        assert len(parts) < 12, "the upload finished before it could be interrupted"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    before = settled_parts(member, entry["upload_id"])
    assert 2 <= len(before) < 12
    assert ("killed", 1) not in member.listed()

    result = member.upload_json(*args[2:], "--resume")
    assert result["resumed"] is True
    assert result["parts_skipped"] == len(before)
    assert result["parts_sent"] == 12 - len(before)
    assert result["bytes_sent"] == len(data) - sum(p["size"] for p in before)
    assert read_back(member.platform, member.tenant, "killed/1/big.onnx") == data
    assert member.listed()[("killed", 1)]["size"] == len(data)
    assert list(member.journal_dir.glob("*.json")) == []

    nothing = member.imm(*args, "--resume")
    assert nothing.returncode != 0
    assert "nothing to resume" in flat(nothing.stderr)


def interrupt(member: Member, args: tuple[str, ...]) -> tuple[subprocess.Popen[str], str, str]:
    proc = member.start(*args)
    try:
        journal = wait_for_journal(member, proc)
        upload_ids = [e["upload_id"] for e in journal["files"].values()]
        step_until_parts(member, proc, upload_ids[0], 1)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return proc, out, err


def test_ctrl_c_aborts_every_upload_of_the_run(member: Member, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "variables").mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(os.urandom(1000))
    (root / "variables" / "variables.data").write_bytes(os.urandom(40 * MiB))
    proc, _out, err = interrupt(
        member, ("models", "upload", str(root), "stopped", "1", "--part", "5", "--parallel", "1")
    )
    assert proc.returncode == 130, err
    assert "aborted" in flat(err)
    nothing_stored(member, "stopped")
    assert list(member.journal_dir.glob("*.json")) == []


def test_ctrl_c_with_keep_leaves_the_upload_resumable(member: Member, tmp_path: Path) -> None:
    data = os.urandom(40 * MiB)
    path = tmp_path / "kept.onnx"
    path.write_bytes(data)
    args = ("models", "upload", str(path), "kept", "1", "--part", "5", "--parallel", "1")
    proc, _out, err = interrupt(member, (*args, "--keep"))
    assert proc.returncode == 130, err
    assert "--resume" in flat(err)
    [journal] = member.journal_dir.glob("*.json")
    [entry] = json.loads(journal.read_text())["files"].values()
    before = settled_parts(member, entry["upload_id"])
    assert before, "the kept upload lost its parts"
    assert ("kept", 1) not in member.listed()

    result = member.upload_json(*args[2:])  # picked up from the journal without --resume
    assert result["resumed"] is True
    assert result["parts_skipped"] == len(before)
    assert read_back(member.platform, member.tenant, "kept/1/kept.onnx") == data


def test_original_uploader_interface(member: Member, tmp_path: Path) -> None:
    data = os.urandom(11 * MiB)
    path = tmp_path / "legacy.pb"
    path.write_bytes(data)
    base = (str(path), "legacy", "1", member.tenant)
    for bad in (("--part", "4"), ("--part", "5001"), ("--part", "ten")):
        refused = member.imm(*base, *bad, module="imm.upload")
        assert refused.returncode == 2
        assert "Part size must be integer between 5 and 5000" in flat(refused.stderr)
    zero = member.imm(str(path), "legacy", "0", member.tenant, module="imm.upload")
    assert zero.returncode == 2
    assert "Model version must be a positive integer" in flat(zero.stderr)
    nothing_stored(member, "legacy")

    done = member.imm(*base, "--part", "5", module="imm.upload")
    assert done.returncode == 0, done.stderr
    assert "sent 3 part(s)" in done.stdout
    assert read_back(member.platform, member.tenant, "legacy/1/legacy.pb") == data


BAD_UPLOADS = [
    ("model upper case", ("Bad-Model", "1"), "lower-case"),
    ("model too short", ("ab", "1"), "3 to 63"),
    ("version zero", ("good-model", "0"), "positive integer"),
    ("version text", ("good-model", "one"), "valid integer"),
    ("part too small", ("good-model", "1", "--part", "4"), "between 5 and 5000"),
    ("part too big", ("good-model", "1", "--part", "5001"), "between 5 and 5000"),
    ("parallel zero", ("good-model", "1", "--parallel", "0"), "--parallel"),
    ("tenant invalid", ("good-model", "1", "--tenant", "Team_M"), "tenant"),
]


@pytest.mark.parametrize(("case", "args", "says"), BAD_UPLOADS, ids=[c[0] for c in BAD_UPLOADS])
def test_invalid_upload_arguments_are_refused(
    member: Member, tmp_path: Path, case: str, args: tuple[str, ...], says: str
) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"weights")
    result = member.imm("models", "upload", str(path), *args)
    assert result.returncode != 0
    assert says in flat(result.stderr), result.stderr
    assert "Traceback" not in result.stderr
    nothing_stored(member, args[0])


def test_invalid_paths_in_a_tree_are_refused_before_anything_starts(
    member: Member, tmp_path: Path
) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "saved_model.pb").write_bytes(b"fine")
    (root / "bad\\name.bin").write_bytes(b"backslash")
    result = member.imm("models", "upload", str(root), "treebad", "1")
    assert result.returncode != 0
    assert "backslash" in flat(result.stderr)
    missing = member.imm("models", "upload", str(tmp_path / "absent"), "treebad", "1")
    assert missing.returncode != 0
    assert "does not exist" in flat(missing.stderr)
    nothing_stored(member, "treebad")


def test_list_view_delete(member: Member, tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"x" * 1000)
    for version in ("1", "2"):
        member.upload_json(str(path), "lvd", version)
    table = member.imm("models", "list")
    assert table.returncode == 0 and "lvd" in table.stdout
    view = member.imm("models", "view", "lvd", "-o", "json")
    assert [v["version"] for v in json.loads(view.stdout)["versions"]] == [1, 2]

    kept = subprocess.run(
        [sys.executable, "-m", "imm", "models", "delete", "lvd", "1"],
        env=member.env,
        input="n\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert kept.returncode != 0
    assert ("lvd", 1) in member.listed()
    deleted = member.imm("models", "delete", "lvd", "1", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert ("lvd", 1) not in member.listed() and ("lvd", 2) in member.listed()
    assert list(platform_store(member.platform).list_objects(member.tenant, "lvd/1/")) == []

    again = member.imm("models", "delete", "lvd", "1", "--yes")
    assert again.returncode == 1
    assert "404" in flat(again.stderr) and "no version 1" in flat(again.stderr)
    bad = member.imm("models", "delete", "lvd", "0", "--yes")
    assert bad.returncode == 1 and "positive integer" in flat(bad.stderr)
    unknown = member.imm("models", "view", "no-such-model")
    assert unknown.returncode == 1 and "404" in flat(unknown.stderr)


def test_member_of_another_tenant_gets_403(
    member: Member, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("other") / "model.onnx"
    path.write_bytes(b"mine")
    member.upload_json(str(path), "private", "1")
    other = new_member(member.platform, tmp_path_factory.mktemp("other-home"), "team-o")
    attempts = [
        ("models", "list", "--tenant", member.tenant),
        ("models", "view", "private", "--tenant", member.tenant),
        ("models", "delete", "private", "1", "--tenant", member.tenant, "--yes"),
        ("models", "upload", str(path), "intruder", "1", "--tenant", member.tenant),
    ]
    for args in attempts:
        result = other.imm(*args)
        assert result.returncode == 1, args
        assert "403" in flat(result.stderr), (args, result.stderr)
    assert ("private", 1) in member.listed()
    nothing_stored(member, "intruder")


def test_transient_failures_are_retried_and_the_upload_survives_a_restart(
    member: Member, tmp_path: Path
) -> None:
    """The API goes away mid-upload: the CLI retries with backoff, then either finishes
    once the API is back or stops with the upload kept, and --resume finishes it."""
    data = os.urandom(40 * MiB)
    path = tmp_path / "restart.onnx"
    path.write_bytes(data)
    args = ("models", "upload", str(path), "restart", "1", "--part", "5", "--parallel", "1")
    proc = member.start(*args, "-o", "json")
    try:
        journal = wait_for_journal(member, proc)
        [entry] = journal["files"].values()
        step_until_parts(member, proc, entry["upload_id"], 1)
        assert member.platform.process is not None
        group = member.platform.process.pid  # its own session: the group is its pid
        member.platform.stop(signal.SIGKILL)  # gone at once, mid-request, as in a crash
        with suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        proc.send_signal(signal.SIGCONT)
        time.sleep(1)  # let it meet the closed port (it retries for several seconds)
        member.platform.start()
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert "retry 1" in flat(err), err
    if proc.returncode != 0:
        assert "run the same command with --resume" in flat(err), err
        out = json.dumps(member.upload_json(*args[2:], "--resume"))
    assert json.loads(out)["size"] == len(data)
    assert read_back(member.platform, member.tenant, "restart/1/restart.onnx") == data
    assert member.listed()[("restart", 1)]["size"] == len(data)
