"""``python -m imm.serving``: serve one model version over TensorFlow Serving's gRPC API.

Flags are named like TF Serving's (``--model_name`` spellings are accepted too), so the
command line of an existing deployment carries over.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

import grpc

from imm.serving import logs
from imm.serving.backends import RuntimeOptions, load
from imm.serving.errors import ModelError
from imm.serving.fetch import Fetched, fetch
from imm.serving.handlers import Handlers
from imm.serving.model import ModelState, Servable, State
from imm.serving.server import ModelServer, ServerOptions
from imm.serving.stopping import StopFlag, stop_on_signals

log = logging.getLogger("imm.serving")


def _flag(parser: argparse.ArgumentParser, name: str, *more: str, **kwargs: object) -> None:
    """Accept ``--model-name`` and TF Serving's ``--model_name`` alike."""
    names = [f"--{name}", f"--{name.replace('-', '_')}", *more]
    parser.add_argument(*dict.fromkeys(names), **kwargs)  # type: ignore[arg-type]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cpus = os.cpu_count() or 1
    p = argparse.ArgumentParser(prog="python -m imm.serving", description=__doc__)
    _flag(p, "model-name", required=True, help="name clients put in ModelSpec.name")
    _flag(p, "model-base-path", required=True, help="folder or s3://bucket/prefix of versions")
    _flag(p, "model-version", type=int, help="version to serve (default: highest complete)")
    _flag(p, "port", type=int, default=8500, help="gRPC port (0: pick a free one)")
    _flag(p, "host", default="0.0.0.0", help="gRPC listen address")
    _flag(
        p,
        "cache-dir",
        type=Path,
        default=Path(os.environ.get("IMM_SERVING_CACHE_DIR", "~/.cache/imm/serving")),
        help="where model versions are copied before loading",
    )
    _flag(p, "metrics-port", type=int, help="Prometheus /metrics HTTP port (default: off)")
    _flag(p, "metrics-host", help="metrics listen address (default: --host)")
    _flag(
        p,
        "grpc-max-threads",
        "--workers",
        type=int,
        default=min(32, 4 * cpus),
        help="threads handling calls concurrently (TF Serving's default: 4 per CPU)",
    )
    _flag(
        p,
        "processes",
        type=int,
        default=1,
        help="server processes sharing the port, each with its own copy of the model "
        "(more throughput past one core; health answers only once a process is ready)",
    )
    _flag(
        p,
        "tensorflow-intra-op-parallelism",
        "--intra-op-threads",
        type=int,
        default=1,
        help="threads one inference may use (onnxruntime and TensorFlow; 0: runtime decides). "
        "1 by default: concurrent calls already fill the cores, waking pool threads costs "
        "latency on small models, and runtimes count the host's cores, not the replica's "
        "CPU limit",
    )
    _flag(
        p,
        "tensorflow-inter-op-parallelism",
        "--inter-op-threads",
        type=int,
        default=0,
        help="threads running independent graph nodes in parallel (0: runtime decides)",
    )
    _flag(
        p,
        "onnx-allow-spinning",
        action="store_true",
        help="let idle onnxruntime threads spin (lower latency alone, less throughput shared)",
    )
    _flag(
        p,
        "max-request-bytes",
        type=int,
        default=64 * 1024 * 1024,
        help="larger requests fail with RESOURCE_EXHAUSTED",
    )
    _flag(p, "ssl-cert-file", type=Path, help="serve TLS with this certificate (PEM)")
    _flag(p, "ssl-key-file", type=Path, help="private key of --ssl-cert-file (PEM)")
    _flag(p, "ssl-client-ca-file", type=Path, help="require client certificates from this CA")
    _flag(p, "grace-period", type=float, default=30.0, help="seconds to finish calls on SIGTERM")
    _flag(
        p,
        "enable-serialization-as-tensor-content",
        action="store_true",
        help="answer with raw tensor_content instead of typed fields (faster, TF Serving's flag)",
    )
    _flag(p, "log-level", default="info", choices=["debug", "info", "warning", "error"])
    _flag(p, "log-format", default="json", choices=["json", "text"])
    args = p.parse_args(argv)
    if args.model_version is not None and args.model_version < 0:
        p.error("--model-version must not be negative")
    if args.processes < 1:
        p.error("--processes must be at least 1")
    if args.processes > 1 and args.port == 0:
        p.error("--processes needs a fixed --port")
    if (args.ssl_cert_file is None) != (args.ssl_key_file is None):
        p.error("--ssl-cert-file and --ssl-key-file go together")
    if args.ssl_client_ca_file and not args.ssl_cert_file:
        p.error("--ssl-client-ca-file needs --ssl-cert-file and --ssl-key-file")
    return args


def _credentials(args: argparse.Namespace) -> grpc.ServerCredentials | None:
    """TLS straight at the replica, for deployments without the mTLS ingress in front."""
    if args.ssl_cert_file is None:
        return None
    ca = args.ssl_client_ca_file.read_bytes() if args.ssl_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(args.ssl_key_file.read_bytes(), args.ssl_cert_file.read_bytes())],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.setup(args.log_level, args.log_format)
    stop = stop_on_signals()
    if args.processes > 1:
        from imm.serving.workers import supervise

        return supervise(args, stop, serve)
    return serve(args, stop)


def serve(
    args: argparse.Namespace,
    stop: StopFlag,
    fetched: Fetched | None = None,
    worker: bool = False,
) -> int:
    """Serve until ``stop``; 0 after a graceful stop, 1 if the model cannot be loaded.

    A ``worker`` (one of several processes sharing the port) gets the model already fetched
    and binds only once it is loaded, so no process that accepts calls is still loading.
    """
    from imm.serving.metrics import Metrics  # after workers set up multi-process metrics

    state = ModelState(args.model_name)
    metrics = Metrics(args.model_name)
    handlers = Handlers(state, tensor_content=args.enable_serialization_as_tensor_content)
    options = ServerOptions(
        host=args.host,
        port=args.port,
        workers=args.grpc_max_threads,
        max_request_bytes=args.max_request_bytes,
        reuse_port=worker,
    )
    server: ModelServer | None = None

    def listen() -> ModelServer | None:
        try:
            created = ModelServer(
                handlers, metrics, replace(options, credentials=_credentials(args))
            )
            if args.metrics_port is not None and not worker:
                metrics.serve(args.metrics_port, args.metrics_host or args.host)
        except (RuntimeError, OSError) as exc:
            log.error("cannot listen", extra={"error": str(exc)})
            return None
        return created

    if not worker:  # answer health checks (NOT_SERVING) while fetching and loading
        server = listen()
        if server is None:
            return 1
        server.start()
        log.info("listening", extra={"port": server.port, "model": args.model_name})

    version = args.model_version or 0
    try:

        def chosen(v: int) -> None:
            nonlocal version
            version = v
            state.set(v, State.LOADING)

        if fetched is None:
            fetched = fetch(
                args.model_base_path,
                args.model_name,
                args.model_version,
                args.cache_dir.expanduser(),
                on_chosen=chosen,
            )
        version = fetched.version
        runtime = RuntimeOptions(
            args.tensorflow_intra_op_parallelism,
            args.tensorflow_inter_op_parallelism,
            args.onnx_allow_spinning,
        )
        backend = load(fetched.path, runtime)
        servable = Servable(fetched.version, backend)
    except ModelError as exc:
        log.error("cannot load model", extra={"version": version, "error": str(exc)})
        state.set(version, State.END, 13, str(exc))
        if server is not None:
            server.stop(0)
        return 1
    try:
        servable.warm_up()
    except Exception as exc:  # synthetic inputs may not suit every model; still serve it
        log.warning("warm-up inference failed", extra={"error": str(exc)})
    state.make_available(servable)
    metrics.set_ready(servable.version, True)
    if server is None:
        server = listen()
        if server is None:
            return 1
        server.ready()
        server.start()
    else:
        server.ready()
    log.info(
        "model ready",
        extra={
            "model": args.model_name,
            "version": servable.version,
            "runtime": backend.platform,
            "port": server.port,
        },
    )

    while not stop.wait(0.1):
        pass
    log.info("stopping", extra={"grace_seconds": args.grace_period})
    metrics.set_ready(servable.version, False)
    server.stop(args.grace_period)
    log.info("stopped", extra={"started_calls": metrics.started_calls()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
