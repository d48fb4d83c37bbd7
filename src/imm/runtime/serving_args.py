"""The model server's command line, the same in either runtime."""

from __future__ import annotations

import math

from imm.domain.quantities import parse

GRACE_PERIOD = 20  # seconds the model server finishes calls in flight after SIGTERM


def intra_op_threads(resources: dict[str, str]) -> int:
    """One inference thread per CPU the replica may use (its limit, else its request)."""
    cpu = resources.get("limits.cpu") or resources.get("requests.cpu")
    return max(1, math.ceil(parse(cpu, "cpu"))) if cpu else 1


def model_server_argv(
    python: str,
    *,
    model_name: str,
    model_version: int,
    base_path: str,
    host: str,
    port: int,
    cache_dir: str,
    threads: int,
) -> list[str]:
    """``python -m imm.serving ...``; ``base_path`` is a folder or ``s3://bucket/model``."""
    return [
        python,
        "-m",
        "imm.serving",
        "--model-name", model_name,
        "--model-base-path", base_path,
        "--model-version", str(model_version),
        "--host", host,
        "--port", str(port),
        "--cache-dir", cache_dir,
        "--intra-op-threads", str(threads),
        "--inter-op-threads", "1",
        "--grace-period", str(GRACE_PERIOD),
    ]  # fmt: skip
