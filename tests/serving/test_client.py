"""`imm predict` and examples/grpc_client.py against real servers, plaintext and mTLS."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import typer
from serving_support import ServerProcess, arith_model, write_pki
from typer.testing import CliRunner

from imm.cli.predict import predict

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cli():
    app = typer.Typer()
    app.command()(predict)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.output

    return run


def _json(output: str):
    return json.loads(
        output[output.index("{") if output.lstrip()[0] == "{" else output.index("[") :]
    )


def test_status_metadata_and_predict(cli, arith_server: ServerProcess, tmp_path):
    base = ["--address", arith_server.address, "--model-name", "demo", "-o", "json"]
    code, out = cli(*base, "--request", "status")
    assert code == 0, out
    assert _json(out) == [
        {"version": 2, "state": "AVAILABLE", "error_code": 0, "error_message": ""}
    ]

    code, out = cli(*base, "--request", "metadata")
    assert code == 0, out
    rows = _json(out)
    assert {"signature": "serving_default", "kind": "input", "name": "a", "dtype": "DT_FLOAT",
            "shape": [-1, 3]} in rows  # fmt: skip

    data = tmp_path / "in.json"
    data.write_text(json.dumps({"a": [[1, 2, 3]], "b": [[10, 20, 30]]}))
    code, out = cli(*base, "--input", str(data))
    assert code == 0, out
    result = _json(out)
    assert result["version"] == 2 and result["outputs"]["sum"] == [[11.0, 22.0, 33.0]]

    code, out = cli(*base, "--batch", "3")  # random data shaped from the metadata
    assert code == 0, out
    assert np.array(_json(out)["outputs"]["prod"]).shape == (3, 4)

    code, out = cli(*base[:-2], "--model-version", "2")  # table output
    assert code == 0 and "sum" in out and "prod" in out, out


def test_performance_mode(cli, arith_server: ServerProcess):
    code, out = cli(
        "--address", arith_server.address, "--model-name", "demo", "-o", "json",
        "--performance", "40", "--concurrency", "4",
    )  # fmt: skip
    assert code == 0, out
    stats = _json(out)
    assert stats["calls"] == 40 and stats["errors"] == 0
    assert 0 < stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"] <= stats["max_ms"]
    assert stats["throughput_per_s"] > 0


def test_errors_exit_non_zero(cli, arith_server: ServerProcess, tmp_path):
    code, out = cli("--address", arith_server.address, "--model-name", "nope")
    assert code == 1 and "NOT_FOUND" in out
    bad = tmp_path / "one.npy"
    np.save(bad, np.ones((1, 3), np.float32))
    code, out = cli("--address", arith_server.address, "--model-name", "demo", "--input", str(bad))
    assert code == 2 and "one array" in out


def test_mutual_tls(cli, serve, tmp_path):
    pki = write_pki(tmp_path / "pki")
    arith_model(tmp_path / "models" / "1" / "m.onnx")
    server = serve(
        tmp_path / "models",
        "--ssl-cert-file", str(pki["server"]),
        "--ssl-key-file", str(pki["server-key"]),
        "--ssl-client-ca-file", str(pki["ca"]),
        wait=False,
    )  # fmt: skip
    tls = ["--ca-cert", str(pki["ca"]), "--server-name", "model.test"]
    base = ["--address", server.address, "--model-name", "demo", "-o", "json"]
    mtls = [*tls, "--client-cert", str(pki["client"]), "--client-key", str(pki["client-key"])]
    for _ in range(600):  # plaintext health checks cannot reach a TLS port: poll with mTLS
        code, out = cli(*base, *mtls, "--request", "status")
        if code == 0 and _json(out)[0]["state"] == "AVAILABLE":
            break
        assert server.proc.poll() is None, server.output()
        time.sleep(0.2)
    assert code == 0, out
    code, out = cli(*base, *mtls)
    assert code == 0 and _json(out)["version"] == 1, out
    code, out = cli(*base, *tls, "--request", "status")  # no client certificate
    assert code == 1 and "UNAVAILABLE" in out

    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "grpc_client.py"), "--address", server.address,
         "--model-name", "demo", "--ca-cert", str(pki["ca"]), "--server-name", "model.test",
         "--client-cert", str(pki["client"]), "--client-key", str(pki["client-key"])],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "model demo version 1" in done.stdout and "sum float32 [1, 3]" in done.stdout
