"""The ingress's nginx configuration, rendered from routes: text in, text out, no I/O.

One TLS listener serves every endpoint. Each endpoint is a ``server`` block chosen by SNI
(which also picks the tenant CA that verifies the client) and by ``:authority``; nginx
refuses a request whose authority names another server than the verified SNI (421). A
catch-all ``default_server`` rejects the handshake for any other name, so an unknown host
never falls into the first endpoint's block.

gRPC clients understand only gRPC answers, so every refusal nginx makes itself is a
headers-only gRPC response (HTTP 204 with ``grpc-status``) from a named location.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from imm.domain.errors import InvalidInput
from imm.domain.names import check_name, check_subject_name

# gRPC status codes used in nginx's own answers
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
UNAVAILABLE = 14
UNAUTHENTICATED = 16

WORKER_SHUTDOWN_TIMEOUT = "30s"
MAX_BODY = "64m"

# OpenSSL prints the client subject as RFC 2253 (``CN=client,O=x``, last RDN first), with
# ``,+"\<>;`` escaped by a backslash (\x5c below: nginx would unescape a literal "\\").
# An attribute value is a run of unescaped non-separators and escape pairs.
_VALUE = r"(?:[^\x5c,+]|\x5c.)*"
_ATTRS = rf"(?:{_VALUE}[,+])*"
# A subject with two CNs is refused outright: which one counts would be a guess.
TWO_CNS = rf"~^{_ATTRS}CN={_VALUE}[,+]{_ATTRS}CN="
ONE_CN = rf"~^{_ATTRS}CN=(?<imm_subject_cn>{_VALUE})(?:[,+]|$)"

_HOST = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")


@dataclass(frozen=True)
class Paths:
    """Files the configuration names; all absolute."""

    work_dir: Path
    server_cert: Path
    server_key: Path

    @property
    def pid(self) -> Path:
        return self.work_dir / "nginx.pid"

    @property
    def error_log(self) -> Path:
        return self.work_dir / "error.log"

    @property
    def temp(self) -> Path:
        return self.work_dir / "tmp"


@dataclass(frozen=True)
class Server:
    """One endpoint's block, as the renderer needs it (``ca_file`` already written)."""

    host: str
    tenant: str
    endpoint: str
    ca_file: Path
    subject_name: str
    backends: tuple[int, ...]
    scaled_to_zero: bool = False

    @property
    def upstream(self) -> str:
        # "__" cannot occur in a name, so tenant and endpoint never blur into each other
        return f"imm_{self.tenant}__{self.endpoint}"


def check_server(server: Server) -> None:
    """Refuse what could change the configuration's meaning (InvalidInput saying why), by
    the rules the API applies earlier: names are resource names, and the subject name has
    nothing that nginx or a distinguished name would escape. ``render`` trusts servers
    that passed this check."""
    if not _HOST.match(server.host):
        raise InvalidInput(f"host {server.host!r} is not a lower-case DNS name")
    check_name(server.tenant, "tenant")
    check_name(server.endpoint, "endpoint")
    try:
        check_subject_name(server.subject_name)
    except InvalidInput as exc:
        raise InvalidInput(f"subject name {server.subject_name!r} refused: {exc}") from None
    for port in server.backends:
        if not 0 < port < 65536:
            raise InvalidInput(f"backend port {port} is out of range")


def grpc_answer(name: str, status: int, message: str) -> str:
    """A named location answering with a gRPC status and nothing else."""
    return f"""
        location @{name} {{
            default_type application/grpc;
            add_header grpc-status {status} always;
            add_header grpc-message "{message}" always;
            return 204;
        }}"""


def render(
    listen: tuple[str, int],
    paths: Paths,
    servers: Sequence[Server],
    user: tuple[str, str] | None = None,
    fingerprint: str = "",
) -> str:
    """The whole nginx.conf. ``user``: (user, group) of the workers when nginx runs as root;
    ``fingerprint`` of the server certificate, so a renewed one changes the text (and
    causes a reload). Every server has passed ``check_server``."""
    host, port = listen
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    tmp = paths.temp
    head = f"user {user[0]} {user[1]};\n" if user else ""
    upstreams = "".join(_upstream(s) for s in servers if s.backends)
    blocks = "".join(_server(address, paths, s) for s in servers)
    return f"""# rendered by imm.runtime.local.ingress; changes are overwritten
# server certificate {fingerprint}
{head}worker_processes auto;
worker_shutdown_timeout {WORKER_SHUTDOWN_TIMEOUT};
pid {paths.pid};
error_log {paths.error_log} notice;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    server_tokens off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;

    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate {paths.server_cert};
    ssl_certificate_key {paths.server_key};
    # no resumption: a session verified by one tenant's CA is never offered to another
    # endpoint's server block (gRPC connections are long-lived; full handshakes are rare)
    ssl_session_cache off;
    ssl_session_tickets off;

    client_max_body_size {MAX_BODY};
    http2_max_concurrent_streams 128;
    keepalive_timeout 300s;
    keepalive_requests 100000;

    grpc_connect_timeout 5s;
    grpc_read_timeout 300s;
    grpc_send_timeout 300s;
    grpc_next_upstream error timeout non_idempotent;
    grpc_socket_keepalive on;

    map $ssl_client_s_dn $imm_client_cn {{
        default "";
        "{TWO_CNS}" "";
        "{ONE_CN}" $imm_subject_cn;
    }}

    server {{
        listen {address} ssl http2 default_server;
        ssl_reject_handshake on;
    }}
{upstreams}{blocks}}}
"""


def _upstream(server: Server) -> str:
    lines = "".join(
        f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;\n"
        for port in server.backends
    )
    return f"""
    upstream {server.upstream} {{
{lines}        keepalive 32;
        keepalive_timeout 60s;
    }}
"""


def _server(address: str, paths: Paths, server: Server) -> str:
    name = server.endpoint
    if server.backends:
        route = f"grpc_pass grpc://{server.upstream};"
        reason = f"endpoint {name}: no replica answered"
    else:
        route = "return 503;"
        reason = (
            f"endpoint {name} is scaled to 0"
            if server.scaled_to_zero
            else (f"endpoint {name} has no ready replica")
        )
    denied = f"client certificate subject is not admitted by endpoint {name}"
    unknown = "client certificate missing or not issued by the tenant CA"
    return f"""
    # tenant {server.tenant}, endpoint {name}
    server {{
        listen {address} ssl http2;
        server_name {server.host};
        ssl_client_certificate {server.ca_file};
        ssl_verify_client on;
        ssl_verify_depth 1;

        error_page 495 496 = @imm_unauthenticated;
        error_page 403 421 = @imm_permission_denied;

        if ($imm_client_cn != "{server.subject_name}") {{
            return 403;
        }}

        location / {{
            error_page 413 = @imm_too_large;
            error_page 502 503 504 = @imm_unavailable;
            {route}
        }}
{grpc_answer("imm_unauthenticated", UNAUTHENTICATED, unknown)}
{grpc_answer("imm_permission_denied", PERMISSION_DENIED, denied)}
{grpc_answer("imm_too_large", RESOURCE_EXHAUSTED, f"request larger than {MAX_BODY}")}
{grpc_answer("imm_unavailable", UNAVAILABLE, reason)}
    }}
"""
