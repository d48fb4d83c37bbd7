"""``imm predict``: talk to a model endpoint (or a bare model server) over TF Serving gRPC."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from imm.cli.common import fail
from imm.cli.output import Output, show

INGRESS_CA_FILE = ".imm-ingress-ca.crt"  # beside ~/.imm


class Request(StrEnum):
    status = "status"
    metadata = "metadata"
    predict = "predict"


def predict(
    endpoint: Annotated[
        str | None,
        typer.Argument(
            help="an endpoint of your tenant: address, TLS name, model and CA come "
            "from the platform"
        ),
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="tenant of ENDPOINT (default: yours)")
    ] = None,
    address: Annotated[
        str | None,
        typer.Option("--address", "-a", help="HOST:PORT of the endpoint or model server"),
    ] = None,
    model_name: Annotated[
        str | None, typer.Option("--model-name", "-m", help="model to call")
    ] = None,
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
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Send a status, metadata or predict request; --performance N measures latency.

    With ENDPOINT, the call goes through the platform's mTLS ingress with your client
    certificate (remembered in ~/.imm after the first use); without it, give --address and
    --model-name to call any TF-Serving-compatible server."""
    import grpc

    from imm.serving.backends.base import DEFAULT_SIGNATURE
    from imm.serving.client import ServingClient, Tls, benchmark, load_inputs, random_inputs

    if endpoint:
        target = resolve_endpoint(endpoint, tenant, client_cert, client_key, ca_cert)
        address = address or target.address
        model_name = model_name or target.model
        server_name = server_name or target.host
        ca_cert, client_cert, client_key = target.ca_cert, target.client_cert, target.client_key
    if not address or not model_name:
        raise typer.BadParameter("give an ENDPOINT, or --address and --model-name")
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
                _show(_metadata_rows(signatures, output), output, title="signatures")
                return
            key = signature or DEFAULT_SIGNATURE
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
            if output is Output.json:
                values = {k: v.tolist() for k, v in outputs.items()}
                _show({"version": version, "outputs": values}, output)
            else:
                _show(_output_rows(outputs), output, title=f"{model_name} version {version}")
    except grpc.RpcError as exc:
        raise fail(f"{exc.code().name}: {exc.details()}") from None
    except ValueError as exc:
        raise fail(str(exc), 2) from None


def _show(data: Any, output: Output, title: str | None = None) -> None:
    """Tables with a header row, a dict as one row (stats)."""
    rows = data if isinstance(data, list) else [data]
    show(data, output, list(rows[0]) if rows else [], title)


def _metadata_rows(signatures: dict[str, Any], output: Output) -> list[dict[str, Any]]:
    rows = []
    for key, sig in signatures.items():
        for kind, tensors in (("input", sig.inputs), ("output", sig.outputs)):
            for alias, info in tensors.items():
                shape = info.shape
                if output is Output.table and shape is not None:
                    shape = str(shape)  # [-1, 3], as a JSON list reads
                rows.append(
                    {"signature": key, "kind": kind, "name": alias, "dtype": info.dtype,
                     "shape": shape}
                )  # fmt: skip
    return rows


def _output_rows(outputs: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"output": k, "dtype": str(v.dtype), "shape": str(list(v.shape)), "values": _short(v)}
        for k, v in outputs.items()
    ]


def _short(array: Any, limit: int = 8) -> str:
    flat = array.ravel().tolist()
    text = ", ".join(repr(v) if isinstance(v, bytes) else f"{v:g}" if isinstance(v, float)
                     else str(v) for v in flat[:limit])  # fmt: skip
    return f"[{text}{', ...' if len(flat) > limit else ''}]"


class Target:
    """Where and how to reach an endpoint through the ingress."""

    def __init__(
        self, address: str, host: str, model: str, ca: Path, cert: Path, key: Path
    ) -> None:
        self.address, self.host, self.model = address, host, model
        self.ca_cert, self.client_cert, self.client_key = ca, cert, key


def resolve_endpoint(
    name: str,
    tenant: str | None,
    client_cert: Path | None,
    client_key: Path | None,
    ca_cert: Path | None,
) -> Target:
    """Asks the API for the endpoint and the ingress CA; remembers certificate paths.

    The CA is fetched on every call (one small request beside the endpoint's, on the same
    connection): a copy kept from an earlier run would fail the TLS handshake after the
    platform's CA changed, with nothing to tell that from an unreachable endpoint."""
    import socket
    from urllib.parse import urlsplit

    from imm.cli.common import api_client, tenant_or_default
    from imm.cli.config import CliConfig, config_path
    from imm.files import write_atomic

    config = CliConfig.load()
    tenant = tenant_or_default(tenant, config)
    client_cert = client_cert or _saved(config, "clientCert")
    client_key = client_key or _saved(config, "clientKey")
    if client_cert is None or client_key is None:
        raise fail("give --client-cert and --client-key (signed by your tenant's CA) once")
    with api_client(config) as client:
        view = client.get_endpoint(tenant, name)
        if ca_cert is None:
            ca_cert = config_path().with_name(INGRESS_CA_FILE)
            pem = client.ingress_ca()
            if not ca_cert.is_file() or ca_cert.read_bytes() != pem:
                write_atomic(ca_cert, pem, 0o644)
    certs = {"clientCert": str(client_cert.resolve()), "clientKey": str(client_key.resolve())}
    if config.certs != certs:  # also drops "ingressCa", saved by older versions, never read
        config.certs = certs
        config.save()
    host = view["url"]
    try:
        socket.getaddrinfo(host, view["port"])
        connect = host
    except OSError:  # *.imm.localhost and private domains: the ingress is where the API is
        connect = urlsplit(config.api).hostname or "127.0.0.1"
    return Target(f"{connect}:{view['port']}", host, view["modelName"], ca_cert, client_cert,
                  client_key)  # fmt: skip


def _saved(config: Any, key: str) -> Path | None:
    value = config.certs.get(key)
    return Path(value) if value and Path(value).exists() else None
