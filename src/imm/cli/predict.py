"""``imm predict``: talk to a model endpoint (or a bare model server) over TF Serving gRPC."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer


class Request(StrEnum):
    status = "status"
    metadata = "metadata"
    predict = "predict"


class Format(StrEnum):
    table = "table"
    json = "json"


def predict(
    address: Annotated[
        str, typer.Option("--address", "-a", help="HOST:PORT of the endpoint or model server")
    ],
    model_name: Annotated[str, typer.Option("--model-name", "-m", help="model to call")],
    model_version: Annotated[
        int | None, typer.Option("--model-version", help="version (default: latest)")
    ] = None,
    request: Annotated[Request, typer.Option("--request", help="what to ask")] = Request.predict,
    input_file: Annotated[
        Path | None,
        typer.Option(
            "--input", help=".npy (single input), .npz or .json; default: random data", exists=True
        ),
    ] = None,
    signature: Annotated[str, typer.Option("--signature", help="signature key")] = "",
    batch: Annotated[int, typer.Option("--batch", min=1, help="size of unknown dims")] = 1,
    ca_cert: Annotated[
        Path | None, typer.Option("--ca-cert", exists=True, help="CA of the server (TLS)")
    ] = None,
    client_cert: Annotated[
        Path | None, typer.Option("--client-cert", exists=True, help="client certificate (mTLS)")
    ] = None,
    client_key: Annotated[
        Path | None, typer.Option("--client-key", exists=True, help="client key (mTLS)")
    ] = None,
    server_name: Annotated[
        str | None, typer.Option("--server-name", help="TLS name and authority to ask for")
    ] = None,
    performance: Annotated[
        int, typer.Option("--performance", min=0, help="send N predicts and print latencies")
    ] = 0,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="parallel callers for --performance")
    ] = 1,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds per call")] = 30.0,
    output: Annotated[Format, typer.Option("--output", "-o")] = Format.table,
) -> None:
    """Send a status, metadata or predict request; --performance N measures latency."""
    import grpc

    from imm.serving.client import ServingClient, Tls, benchmark, load_inputs, random_inputs

    tls = None
    if ca_cert or client_cert or client_key or server_name:
        tls = Tls(ca_cert, client_cert, client_key, server_name)
    try:
        with ServingClient(address, tls, timeout) as client:
            if request is Request.status:
                _show(client.status(model_name, model_version), output)
                return
            signatures = client.metadata(model_name, model_version)
            if request is Request.metadata:
                _show(_metadata_rows(signatures), output, title="signatures")
                return
            key = signature or "serving_default"
            if key not in signatures:
                raise typer.BadParameter(f"no signature {key!r}; have {sorted(signatures)}")
            inputs = (
                load_inputs(input_file, signatures[key])
                if input_file
                else random_inputs(signatures[key], batch=batch)
            )
            call = client.predict_request(model_name, inputs, model_version, signature)
            if performance:
                stats = benchmark(client, call, performance, concurrency)
                _show(stats.as_dict(), output)
                if stats.errors:
                    raise typer.Exit(1)
                return
            outputs, version = client.predict(call)
            if output is Format.json:
                values = {k: v.tolist() for k, v in outputs.items()}
                _show({"version": version, "outputs": values}, output)
            else:
                _show(_output_rows(outputs), output, title=f"{model_name} version {version}")
    except grpc.RpcError as exc:
        typer.echo(f"error: {exc.code().name}: {exc.details()}", err=True)
        raise typer.Exit(1) from None
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _metadata_rows(signatures: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, sig in signatures.items():
        for kind, tensors in (("input", sig.inputs), ("output", sig.outputs)):
            for alias, info in tensors.items():
                rows.append(
                    {"signature": key, "kind": kind, "name": alias, "dtype": info.dtype,
                     "shape": info.shape}
                )  # fmt: skip
    return rows


def _output_rows(outputs: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"output": k, "dtype": str(v.dtype), "shape": list(v.shape), "values": _short(v)}
        for k, v in outputs.items()
    ]


def _short(array: Any, limit: int = 8) -> str:
    flat = array.ravel().tolist()
    text = ", ".join(repr(v) if isinstance(v, bytes) else f"{v:g}" if isinstance(v, float)
                     else str(v) for v in flat[:limit])  # fmt: skip
    return f"[{text}{', ...' if len(flat) > limit else ''}]"


def _show(data: Any, output: Format, title: str | None = None) -> None:
    if output is Format.json:
        typer.echo(json.dumps(data, indent=2, default=_plain))
        return
    from rich.console import Console
    from rich.table import Table

    rows = data if isinstance(data, list) else [data]
    table = Table(title=title)
    columns = list(rows[0]) if rows else []
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("-" if row[c] is None else str(row[c]) for c in columns))
    Console().print(table)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)
