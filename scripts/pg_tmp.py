#!/usr/bin/env python3
"""A throw-away PostgreSQL server on a free loopback port, for the tests.

``pg_tmp.py start`` prints shell ``export`` lines (IMM_TEST_POSTGRES_URL, IMM_TEST_PG_DIR);
``pg_tmp.py stop DIR`` stops it and removes its files. PostgreSQL refuses to run as root,
so as root it runs as the ``postgres`` system user that Debian's package creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if not path:
        sys.exit(f"pg_tmp: {name} not found; install Debian's postgresql package")
    return path


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start() -> None:
    base = tempfile.mkdtemp(prefix="imm-pg-")
    data, sock = os.path.join(base, "data"), os.path.join(base, "sock")
    os.makedirs(sock)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "check": True}
    subprocess.run(_as_owner([_bin("initdb"), "-D", data, "-A", "trust", "-U", "imm"]), **quiet)
    port = _free_port()
    options = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        _as_owner(
            [
                _bin("pg_ctl"),
                "-D",
                data,
                "-o",
                options,
                "-w",
                "-l",
                os.path.join(base, "log"),
                "start",
            ]
        ),
        **quiet,
    )
    print(f"export IMM_TEST_POSTGRES_URL=postgresql+psycopg://imm@127.0.0.1:{port}/postgres")
    print(f"export IMM_TEST_PG_DIR={base}")


def stop(base: str) -> None:
    data = os.path.join(base, "data")
    subprocess.run(
        _as_owner([_bin("pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "start":
        start()
    elif len(sys.argv) == 3 and sys.argv[1] == "stop":
        stop(sys.argv[2])
    else:
        sys.exit("usage: pg_tmp.py start | stop DIR")
