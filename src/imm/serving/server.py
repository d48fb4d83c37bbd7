"""The gRPC front end: TF Serving's two services plus grpc.health.v1, on one port.

Handlers are plain functions of a request; this module adds what every call needs
(status mapping, metrics, never a crash) and nothing else. A synchronous gRPC server with
a thread pool is used: runtimes release the GIL while they compute, so threads overlap
inference, and there is no event-loop hop per call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from imm.serving.errors import ServingError
from imm.serving.handlers import Handlers
from imm.serving.protos.services import METHODS, MODEL_SERVICE, PREDICTION_SERVICE

if TYPE_CHECKING:  # imported at run time only after multi-process metrics are set up
    from imm.serving.metrics import Metrics

log = logging.getLogger("imm.serving")

MAX_MESSAGE = 1024  # TF Serving cuts longer status messages (grpc_status_util.cc)
SERVICES = (PREDICTION_SERVICE, MODEL_SERVICE)


@dataclass(frozen=True)
class ServerOptions:
    host: str = "0.0.0.0"
    port: int = 8500
    workers: int = 8
    max_request_bytes: int = 64 * 1024 * 1024
    credentials: grpc.ServerCredentials | None = None  # TLS; None: plaintext
    reuse_port: bool = False  # several worker processes share the port


def _truncate(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "...TRUNCATED"


def _unimplemented(name: str) -> Callable[[Any], Any]:
    def handler(request: Any) -> Any:
        raise ServingError(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{name} is not supported by this server; use Predict",
        )

    return handler


def _wrap(name: str, fn: Callable[[Any], Any], metrics: Metrics) -> Callable[[Any, Any], Any]:
    inflight = metrics.inflight
    started = metrics.started
    clock = time.perf_counter

    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        start = clock()
        started(name)
        inflight.inc()
        code = "OK"
        try:
            return fn(request)
        except ServingError as exc:
            code = exc.code.name
            log.info("request failed", extra={"method": name, "code": code, "error": exc.message})
            context.abort(exc.code, _truncate(exc.message))
        except Exception as exc:  # a bug or a runtime fault: report it, keep serving
            code = "INTERNAL"
            log.exception("request crashed", extra={"method": name})
            context.abort(grpc.StatusCode.INTERNAL, _truncate(f"{type(exc).__name__}: {exc}"))
        finally:
            inflight.dec()
            metrics.observe(name, code, clock() - start)

    return handler


def _handlers(handlers: Handlers, metrics: Metrics) -> list[grpc.GenericRpcHandler]:
    implemented: dict[str, Callable[[Any], Any]] = {
        "Predict": handlers.predict,
        "GetModelMetadata": handlers.get_model_metadata,
        "GetModelStatus": handlers.get_model_status,
    }
    by_service: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
    for name, method in METHODS.items():
        fn = implemented.get(name) or _unimplemented(name)
        by_service.setdefault(method.service, {})[name] = grpc.unary_unary_rpc_method_handler(
            _wrap(name, fn, metrics),
            request_deserializer=method.request.FromString,
            response_serializer=method.response.SerializeToString,
        )
    return [grpc.method_handlers_generic_handler(s, m) for s, m in by_service.items()]


class ModelServer:
    """Owns the gRPC server and its health status; ``ready()`` flips health to SERVING."""

    def __init__(self, handlers: Handlers, metrics: Metrics, options: ServerOptions) -> None:
        self.options = options
        self.health = health.HealthServicer()
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="grpc"),
            handlers=_handlers(handlers, metrics),
            options=[
                ("grpc.max_receive_message_length", options.max_request_bytes),
                ("grpc.max_send_message_length", -1),
                ("grpc.so_reuseport", 1 if options.reuse_port else 0),
            ],
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        address = f"{options.host}:{options.port}"
        if ":" in options.host and not options.host.startswith("["):
            address = f"[{options.host}]:{options.port}"
        if options.credentials is None:
            self.port = self._server.add_insecure_port(address)
        else:
            self.port = self._server.add_secure_port(address, options.credentials)

    def _set_health(self, status: int) -> None:
        for service in ("", *SERVICES):
            self.health.set(service, status)

    def start(self) -> None:
        self._server.start()

    def ready(self) -> None:
        self._set_health(health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float) -> None:
        """Refuse new calls at once, let calls in flight finish for up to ``grace`` seconds."""
        self.health.enter_graceful_shutdown()
        self._server.stop(grace).wait()
