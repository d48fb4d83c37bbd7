"""The local runtime's ingress: Debian's nginx, run as the platform's own process.

nginx runs in the foreground (``daemon off``) with its own prefix, configuration, pid file
and error log under ``<data_dir>/ingress/``, never as the system service. A change of
routes is rendered, checked with ``nginx -t`` and applied with SIGHUP: the master starts
workers with the new configuration and tells the old ones to stop accepting connections
and finish the calls they carry. ``apply`` returns once no old worker accepts any more;
``wait_drained`` waits until the old workers have exited, after which a replica that left
the ingress can be stopped without cutting a call.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from imm.domain.errors import InvalidInput
from imm.files import write_atomic
from imm.runtime.local import nginx_proc
from imm.runtime.local.lifetime import die_with_parent
from imm.runtime.local.nginx_conf import Paths, Server, check_server, render
from imm.runtime.local.pki import PlatformPki

log = logging.getLogger("imm.runtime.ingress")

START_TIMEOUT = 30.0
RELOAD_TIMEOUT = 30.0
POLL = 0.02
WORKER_USER = "nobody"


class IngressError(RuntimeError):
    """nginx refused a configuration or did not start; the message carries its words."""


@dataclass(frozen=True)
class Route:
    host: str  # <endpoint>-<tenant>.<domain>
    tenant: str
    endpoint: str
    ca_pem: str  # the tenant CA certificate (PEM)
    subject_name: str  # the only client certificate CN admitted
    backends: tuple[int, ...]  # 127.0.0.1 ports of READY replicas; empty -> UNAVAILABLE
    scaled_to_zero: bool = False  # empty because replicas == 0: the message says so


def find_nginx() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if not found:
        raise IngressError("nginx is not installed (Debian: apt-get install nginx-light)")
    return found


def worker_user() -> tuple[str, str] | None:
    """Workers drop root to ``nobody`` and its group; unprivileged, nginx keeps its user."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(WORKER_USER)
        return entry.pw_name, grp.getgrgid(entry.pw_gid).gr_name
    except KeyError:
        return None


class Ingress:
    def __init__(
        self,
        listen: tuple[str, int],
        domain: str,
        work_dir: Path,
        pki: PlatformPki,
        nginx: str | None = None,
    ) -> None:
        self.listen = listen
        self.domain = domain  # as Settings.domain gives it: lower case, no trailing dot
        self.work_dir = work_dir.resolve()
        self.pki = pki
        self.nginx = nginx
        self.paths = Paths(self.work_dir, pki.cert_path.resolve(), pki.key_path.resolve())
        self.conf_path = self.work_dir / "nginx.conf"
        self.ca_dir = self.work_dir / "ca"
        self.user = worker_user()
        self._lock = threading.RLock()
        self._process: subprocess.Popen[bytes] | None = None
        self._routes: tuple[Route, ...] = ()
        self._running_conf: str | None = None
        self.rejected: dict[tuple[str, str], str] = {}  # (tenant, endpoint) -> why left out

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The master's pid while nginx runs."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def start(self) -> None:
        """Start nginx with the routes applied so far (none at first)."""
        with self._lock:
            if self.pid is not None:
                return
            self.nginx = self.nginx or find_nginx()
            self._prepare_dirs()
            self.pki.ensure()
            self._stop_stale()
            text = self._render(self._routes)
            self._install(text)
            output = (self.work_dir / "nginx.out").open("ab")
            try:
                self._process = subprocess.Popen(
                    [*self._command(self.conf_path), "-g", "daemon off;"],
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own group: stopped as one, not by Ctrl-C
                    preexec_fn=die_with_parent,  # as the replicas do
                )
            finally:
                output.close()
            try:
                self._wait_started(self._process)
            except BaseException:
                self._kill_group(self._process)
                self._process = None
                raise
            self._running_conf = text
            log.info("ingress listening on %s:%s (nginx pid %s)", *self.listen, self.pid)

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (calls in flight finish), forced after ``timeout`` seconds."""
        with self._lock:
            process, self._process = self._process, None
            self._running_conf = None
            if process is None:
                return
            if process.poll() is None:
                process.send_signal(signal.SIGQUIT)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning("nginx did not stop within %ss; killing it", timeout)
            self._kill_group(process)

    # -- configuration ----------------------------------------------------------------------

    def apply(self, routes: Sequence[Route]) -> bool:
        """Make ``routes`` the configuration; returns whether nginx reloaded.

        When it returns, every new connection is served by the new configuration; calls on
        connections accepted before finish on the old workers (see ``wait_drained``).
        Raises IngressError (and keeps the running configuration) if nginx refuses it.
        """
        with self._lock:
            self._prepare_dirs()
            self.pki.ensure()  # a renewed server certificate changes the text: reload
            text = self._render(routes)
            if self._process is not None and self._process.poll() is not None:
                log.error(
                    "nginx exited with %s; starting it again: %s",
                    self._process.returncode,
                    self._log_tail(),
                )
                self._process, self._running_conf = None, None
                self._routes = tuple(routes)
                self.start()
                return True
            master = self.pid
            if master is None or text == self._running_conf:
                self._routes = tuple(routes)  # what start() serves
                return False
            self._install(text)
            self._reload(master)
            self._routes = tuple(routes)
            self._running_conf = text
            self._remove_unused_ca_files()
            return True

    def wait_drained(self, timeout: float) -> bool:
        """Wait until no worker of an earlier configuration is left; ``timeout`` 0 asks once."""
        deadline = time.monotonic() + timeout
        while True:
            master = self.pid
            if master is None or not any(w.shutting_down for w in nginx_proc.workers(master)):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL)

    # -- internals --------------------------------------------------------------------------

    def _command(self, conf: Path) -> list[str]:
        assert self.nginx is not None
        return [
            self.nginx, "-p", f"{self.work_dir}/", "-c", str(conf), "-e", str(self.paths.error_log)
        ]  # fmt: skip

    def _prepare_dirs(self) -> None:
        for folder in (self.work_dir, self.ca_dir, self.paths.temp):
            folder.mkdir(parents=True, exist_ok=True)
        self.paths.temp.chmod(0o755)
        if self.user is not None:  # nginx makes its temp folders inside for the workers
            entry = pwd.getpwnam(self.user[0])
            os.chown(self.paths.temp, entry.pw_uid, entry.pw_gid)

    def _render(self, routes: Sequence[Route]) -> str:
        """The configuration text; a route that cannot be served is left out (and kept in
        ``rejected``) rather than failing the whole ingress: one tenant's bad data must not
        stop every other endpoint's updates."""
        servers: list[Server] = []
        hosts: dict[str, Route] = {}
        rejected: dict[tuple[str, str], str] = {}
        for route in routes:
            reason = self._refusal(route, hosts.get(route.host))
            if reason:
                log.error("ingress leaves out %s/%s: %s", route.tenant, route.endpoint, reason)
                rejected[(route.tenant, route.endpoint)] = reason
                continue
            server = Server(
                host=route.host,
                tenant=route.tenant,
                endpoint=route.endpoint,
                ca_file=self._ca_file(route.ca_pem),
                subject_name=route.subject_name,
                backends=tuple(route.backends),
                scaled_to_zero=route.scaled_to_zero,
            )
            hosts[route.host] = route
            servers.append(server)
        self.rejected = rejected
        fingerprint = hashlib.sha256(self.pki.cert_path.read_bytes()).hexdigest()
        return render(self.listen, self.paths, servers, self.user, fingerprint)

    def _refusal(self, route: Route, taken_by: Route | None) -> str | None:
        if not route.host.endswith(f".{self.domain}"):
            return f"host {route.host!r} is not under the domain {self.domain}"
        if taken_by is not None:
            return f"host {route.host} is already served for {taken_by.tenant}/{taken_by.endpoint}"
        try:
            check_server(
                Server(route.host, route.tenant, route.endpoint, Path("/"), route.subject_name,
                       tuple(route.backends))
            )  # fmt: skip
        except InvalidInput as exc:
            return str(exc)
        try:
            x509.load_pem_x509_certificate(route.ca_pem.strip().encode())
        except ValueError:
            return "the tenant CA is not a PEM certificate"
        return None

    def _ca_file(self, pem: str) -> Path:
        """Tenant CAs by content: a changed CA is a new file name, hence a reload."""
        data = pem.strip().encode() + b"\n"
        path = self.ca_dir / f"{hashlib.sha256(data).hexdigest()[:24]}.crt"
        if not path.exists():
            write_atomic(path, data, 0o644)
        return path

    def _remove_unused_ca_files(self) -> None:
        text = self._running_conf or ""
        for path in self.ca_dir.glob("*.crt"):
            if str(path) not in text:
                path.unlink(missing_ok=True)

    def _install(self, text: str) -> None:
        """Check the text with ``nginx -t`` and make it the configuration file."""
        candidate = self.work_dir / "nginx.conf.new"
        write_atomic(candidate, text.encode(), 0o644)
        assert self.nginx is not None
        result = subprocess.run(
            [*self._command(candidate), "-t", "-q"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise IngressError(f"nginx refused the configuration: {result.stderr.strip()}")
        os.replace(candidate, self.conf_path)

    def _reload(self, master: int) -> None:
        old = {w.pid for w in nginx_proc.workers(master) if not w.shutting_down}
        log_size = self._log_size()
        os.kill(master, signal.SIGHUP)
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while True:
            now = {w.pid: w for w in nginx_proc.workers(master)}
            old_accepting = [p for p in old if p in now and not now[p].shutting_down]
            new = [w for p, w in now.items() if p not in old and not w.shutting_down]
            if not old_accepting and new:
                return
            failure = self._log_errors_since(log_size)
            if self.pid is None:
                failure = f"nginx exited during the reload: {self._log_tail()}"
            if failure or time.monotonic() > deadline:
                raise IngressError(f"nginx did not reload: {failure or 'timed out'}")
            time.sleep(POLL)

    def _wait_started(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise IngressError(f"nginx exited with {process.returncode}: {self._log_tail()}")
            started = self._pid_file() == process.pid and nginx_proc.workers(process.pid)
            if started and self._listening():
                return
            if time.monotonic() > deadline:
                raise IngressError(f"nginx did not start in {START_TIMEOUT}s: {self._log_tail()}")
            time.sleep(POLL)

    def _listening(self) -> bool:
        host, port = self.listen
        try:
            socket.create_connection((host, port), timeout=1).close()
        except OSError:
            return False
        return True

    def _pid_file(self) -> int | None:
        try:
            return int(self.paths.pid.read_text().strip())
        except (OSError, ValueError):
            return None

    def _stop_stale(self) -> None:
        """Kill what a previous run left (a platform killed before it could stop nginx)."""
        stale = nginx_proc.stale(self.paths.pid, self.conf_path, self.paths.error_log)
        for proc in stale:
            log.warning("killing stale nginx process %s (%s)", proc.pid, proc.title)
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + START_TIMEOUT
        while any(nginx_proc.is_alive(p.pid) for p in stale):
            if time.monotonic() > deadline:
                raise IngressError("stale nginx processes did not exit")
            time.sleep(POLL)
        self.paths.pid.unlink(missing_ok=True)

    @staticmethod
    def _kill_group(process: subprocess.Popen[bytes]) -> None:
        """The master and any worker it left behind share the process group (whose id is
        the master's pid: signalled as a group only while the master is alive, so a reused
        pid is never hit)."""
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        else:
            for proc in nginx_proc.processes():
                if proc.pgid == process.pid and proc.title.startswith("nginx:"):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(proc.pid, signal.SIGKILL)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            log.error("nginx master %s did not exit after SIGKILL", process.pid)

    def _log_size(self) -> int:
        try:
            return self.paths.error_log.stat().st_size
        except OSError:
            return 0

    def _log_errors_since(self, offset: int) -> str:
        try:
            with self.paths.error_log.open("rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        bad = [line for line in text.splitlines() if "[emerg]" in line or "[alert]" in line]
        return "\n".join(bad)

    def _log_tail(self, size: int = 2000) -> str:
        parts = []
        for path in (self.work_dir / "nginx.out", self.paths.error_log):
            try:
                parts.append(path.read_text(errors="replace")[-size:])
            except OSError:
                continue
        return "\n".join(p for p in parts if p.strip())
