"""Every `imm` command loads imm.cli.main: it must not pay for the server's modules."""

from __future__ import annotations

import subprocess
import sys

SERVER_SIDE = ("imm.config", "imm.auth", "pydantic_settings", "argon2", "imm.serving", "grpc")


def test_cli_does_not_import_server_modules() -> None:
    code = (
        "import sys, imm.cli.main\n"
        f"print(sorted(m for m in sys.modules if m.startswith({SERVER_SIDE!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
