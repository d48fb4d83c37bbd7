"""Fixtures for the serving tests; the helpers they use live in ``serving_support``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from serving_support import ServerProcess, arith_model, start_server


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers for one test; all are stopped afterwards."""
    started: list[ServerProcess] = []

    def _start(base: Path | str, *extra: str, **kwargs: object) -> ServerProcess:
        server = start_server(base, tmp_path, *extra, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield _start
    for server in started:
        server.kill()


@pytest.fixture(scope="module")
def arith_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The arith model as version 2 of 'demo' (version 1 is older, version 3 incomplete)."""
    tmp = tmp_path_factory.mktemp("arith")
    base = tmp / "models"
    arith_model(base / "1" / "model.onnx")
    arith_model(base / "2" / "model.onnx")
    (base / "3").mkdir()
    (base / "3" / "README").write_text("upload still running")
    server = start_server(base, tmp)
    server.model = base / "2" / "model.onnx"
    yield server
    server.kill()
