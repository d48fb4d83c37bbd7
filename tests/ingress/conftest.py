"""Fixtures for the ingress tests: real nginx, real model servers, real certificates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ingress_support import (
    MakeIngress,
    MakeServer,
    ModelServer,
    model_base,
    new_ingress,
    start_server,
)

from imm.runtime.local.ingress import Ingress


@pytest.fixture
def make_ingress(tmp_path: Path) -> Iterator[MakeIngress]:
    """``make_ingress(data_dir=None, port=None)``: an Ingress (not started), stopped after."""
    made: list[Ingress] = []

    def make(data_dir: Path | None = None, port: int | None = None) -> Ingress:
        ingress = new_ingress(data_dir or tmp_path / f"data{len(made)}", port)
        made.append(ingress)
        return ingress

    yield make
    for ingress in made:
        ingress.stop(timeout=5)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[MakeServer]:
    """``make_server(offset=0.0)``: a ready model server computing 2x + offset."""
    started: list[ModelServer] = []

    def make(offset: float = 0.0) -> ModelServer:
        base = model_base(tmp_path / f"model{len(started)}", offset)
        return start_server(base, tmp_path, started)

    yield make
    for server in started:
        server.kill()
