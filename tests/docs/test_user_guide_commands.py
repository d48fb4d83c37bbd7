"""Every command of docs/user-guide.md, run as written, in order, against a fresh platform.

A block is skipped only when a `<!-- guide-test: skip (why) -->` line stands right before it
(interactive steps). Each block runs in bash with `set -euo pipefail`, from a scratch
folder that holds the repository's `examples/`, as a user with the platform's settings.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from fixtures.platform import ADMIN_PASSWORD, Platform

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "user-guide.md"
BLOCK = re.compile(r"(<!-- guide-test: skip[^\n]*-->\n)?```bash\n(.*?)```", re.S)


# What the guide says a block prints, checked where it says so.
EXPECTED = {
    "imm predict scorer --client-cert": "[3, 5, 7, 9]",  # version 1: 2x + 1
    "imm endpoints update scorer --version 2": "[4, 6, 8, 10]",  # version 2: 2x + 2
    "imm endpoints scale small 5": "refused, as expected",
}


def guide_blocks() -> list[tuple[str, str | None]]:
    """(the block's commands, the heading it stands under) in document order; None for
    the section of skipped blocks."""
    blocks = []
    for match in BLOCK.finditer(GUIDE.read_text()):
        heading = GUIDE.read_text()[: match.start()].rsplit("\n## ", 1)[-1].split("\n", 1)[0]
        blocks.append((match.group(2), None if match.group(1) else heading))
    return blocks


def test_the_guide_has_the_sections_users_need() -> None:
    headings = re.findall(r"^## (.+)$", GUIDE.read_text(), re.M)
    for needed in (
        "Logging in", "Uploading models", "Listing and deleting models", "Client certificates",
        "Creating endpoints", "Listing and viewing endpoints", "Updating endpoints",
        "Scaling endpoints", "Deleting endpoints", "Endpoint resources",
    ):  # fmt: skip
        assert needed in headings, needed


def test_every_guide_command_works_as_written(platform: Platform, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")
    env = {
        **platform.env,
        "HOME": str(tmp_path),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "IMM_API_URL": platform.url,
        "IMM_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    ran = 0
    for commands, heading in guide_blocks():
        if heading is None:
            continue
        result = subprocess.run(
            ["bash", "-c", f"set -euo pipefail\n{commands}"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, (
            f"user guide, section {heading!r}, block:\n{commands}\n"
            f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
        )
        ran += 1
        for marker, expected in EXPECTED.items():
            if marker in commands:
                assert expected in result.stdout, (heading, expected, result.stdout[-2000:])
    assert ran >= 18
