"""The original platform's uploader interface, kept for its users' scripts:

    python -m imm.upload FILE MODEL VERSION TENANT [--part MB] [-k]

Same arguments and rules as before (VERSION a positive integer, --part 5..5000 MiB,
default 30, -k/--insecure), plus --parallel, --resume and --keep as in ``imm models
upload``; it uses the login saved by ``imm login`` (``~/.imm`` or ``$IMM_CONFIG``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imm.upload import PART_MB_DEFAULT, PART_MB_MAX, PART_MB_MIN, UploadRequest


def model_version(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise argparse.ArgumentTypeError("Model version must be a positive integer")
    return number


def part_size(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not PART_MB_MIN <= number <= PART_MB_MAX:
        raise argparse.ArgumentTypeError(
            f"Part size must be integer between {PART_MB_MIN} and {PART_MB_MAX}"
        )
    return number


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m imm.upload", description="Model Uploader")
    p.add_argument("file_path", type=Path, help="file, directory or archive to upload")
    p.add_argument("model_name", help="name of the uploaded model")
    p.add_argument("model_version", type=model_version, help="version of the uploaded model")
    p.add_argument("tenant", help="tenant the model is uploaded to")
    p.add_argument(
        "--part",
        type=part_size,
        default=PART_MB_DEFAULT,
        help=f"size in MiB of one part ({PART_MB_MIN}-{PART_MB_MAX}, default {PART_MB_DEFAULT})",
    )
    p.add_argument(
        "-k", "--insecure", action="store_true", help="do not verify the API's TLS certificate"
    )
    p.add_argument("--parallel", type=int, default=4, help="parts sent at once (default 4)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted upload")
    p.add_argument("--keep", action="store_true", help="on Ctrl-C keep the upload resumable")
    return p


def main(argv: list[str] | None = None) -> int:
    import typer

    from imm.cli.models import run_upload

    args = parser().parse_args(argv)
    request = UploadRequest(
        args.file_path, args.tenant, args.model_name, args.model_version,
        args.part, args.parallel, args.resume, args.keep,
    )  # fmt: skip
    try:
        run_upload(request, verify=not args.insecure)
    except typer.Exit as done:
        return done.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
