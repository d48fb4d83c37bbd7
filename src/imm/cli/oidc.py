"""OpenID Connect from the CLI's side: discovery, browser login with PKCE, password grant,
refresh. Works with any standard issuer (Dex, the built-in one)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import webbrowser
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt

from imm.cli.config import CliConfig
from imm.client import ApiError

SCOPES = "openid email groups profile offline_access"
REFRESH_MARGIN = 60  # refresh this many seconds before the ID token expires


class LoginError(Exception):
    pass


def discover(issuer: str) -> dict[str, Any]:
    try:
        response = httpx.get(f"{issuer.rstrip('/')}/.well-known/openid-configuration", timeout=30)
        response.raise_for_status()
        return response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise LoginError(f"cannot read the issuer's discovery document: {exc}") from exc


def _token_request(token_endpoint: str, form: dict[str, str]) -> dict[str, Any]:
    try:
        response = httpx.post(token_endpoint, data=form, timeout=30)
    except httpx.HTTPError as exc:
        raise LoginError(f"cannot reach the token endpoint: {exc}") from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or "id_token" not in body:
        reason = body.get("error_description") or body.get("error") or response.text[:200]
        raise LoginError(f"login refused: {reason}")
    return body


def password_login(issuer: str, client_id: str, username: str, password: str) -> dict[str, Any]:
    endpoints = discover(issuer)
    return _token_request(
        endpoints["token_endpoint"],
        {
            "grant_type": "password",
            "client_id": client_id,
            "username": username,
            "password": password,
            "scope": SCOPES,
        },
    )


class _Callback(BaseHTTPRequestHandler):
    result: dict[str, str] | None = None
    done = threading.Event()

    def do_GET(self) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        if "code" not in query and "error" not in query:
            self.send_response(404)
            self.end_headers()
            return
        type(self).result = query
        ok = "code" in query
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        message = "You are logged in to IMM." if ok else "Login failed."
        self.wfile.write(f"<p>{message} You may close this window.</p>".encode())
        type(self).done.set()

    def log_message(self, *_: Any) -> None:  # keep the terminal clean
        pass


def browser_login(
    issuer: str,
    client_id: str,
    open_browser: bool = True,
    show_url: Callable[[str], None] = print,
    timeout: float = 300.0,
) -> dict[str, Any]:
    """Authorization code + PKCE (S256) with a loopback redirect (RFC 8252)."""
    endpoints = discover(issuer)
    handler = type("Callback", (_Callback,), {"result": None, "done": threading.Event()})
    server = HTTPServer(("127.0.0.1", 0), handler)
    redirect_uri = f"http://127.0.0.1:{server.server_port}/callback"
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(16)
    url = (
        endpoints["authorization_endpoint"]
        + "?"
        + urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "scope": SCOPES,
                "state": state,
                "code_challenge": challenge.rstrip(b"=").decode(),
                "code_challenge_method": "S256",
            }
        )
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        show_url(url)
        if open_browser:
            webbrowser.open(url)
        if not handler.done.wait(timeout):
            raise LoginError("timed out waiting for the browser to come back")
    finally:
        server.shutdown()
        server.server_close()
    result = handler.result or {}
    if result.get("state") != state:
        raise LoginError("the login answer does not match this login attempt (state)")
    if "code" not in result:
        raise LoginError(f"login failed: {result.get('error_description') or result.get('error')}")
    return _token_request(
        endpoints["token_endpoint"],
        {
            "grant_type": "authorization_code",
            "client_id": client_id,
            "code": result["code"],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )


def has_browser() -> bool:
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


def _expires_at(token: str) -> float:
    try:
        return float(jwt.decode(token, options={"verify_signature": False}).get("exp", 0))
    except jwt.InvalidTokenError:
        return 0.0


def token_provider(config: CliConfig) -> Callable[[bool], str | None]:
    """A token for each request, refreshed (and saved) when it is about to expire."""

    def provide(force_refresh: bool) -> str | None:
        token = config.id_token
        if token is None:
            return None
        stale = _expires_at(token) - REFRESH_MARGIN < time.time()
        if (force_refresh or stale) and config.refresh_token and config.issuer:
            try:
                endpoints = discover(config.issuer)
                tokens = _token_request(
                    endpoints["token_endpoint"],
                    {
                        "grant_type": "refresh_token",
                        "client_id": config.client_id or "",
                        "refresh_token": config.refresh_token,
                    },
                )
            except LoginError as exc:
                raise ApiError(401, f"your session has ended ({exc}); run `imm login`") from exc
            remember(config, tokens)
            config.save()
            token = config.id_token
        return token

    return provide


def remember(config: CliConfig, tokens: dict[str, Any]) -> None:
    config.id_token = tokens["id_token"]
    config.refresh_token = tokens.get("refresh_token") or config.refresh_token
    claims = jwt.decode(config.id_token, options={"verify_signature": False})
    config.username = claims.get("preferred_username") or claims.get("email") or claims["sub"]
