"""HTTP front-end of the built-in issuer, mounted under ``/oidc``.

The token endpoint answers errors in the OAuth 2.0 format (``{"error", "error_description"}``)
rather than problem+json, because that is what every OAuth client library parses.
"""

from __future__ import annotations

import html
from pathlib import Path
from string import Template
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from imm.auth.issuer.service import BuiltinIssuer, OAuthError, is_loopback_redirect
from imm.domain.errors import InvalidInput, Unauthenticated

LOGIN_PAGE = Template((Path(__file__).parent / "login.html").read_text())
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
AUTHORIZE_PARAMS = (
    "response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
    "code_challenge", "code_challenge_method",
)  # fmt: skip


def _check_authorize(issuer: BuiltinIssuer, params: dict[str, str]) -> None:
    """Problems that must not redirect (unknown client, foreign redirect) raise InvalidInput."""
    if params.get("client_id") != issuer.client_id:
        raise InvalidInput(f"unknown client_id {params.get('client_id')!r}")
    if not is_loopback_redirect(params.get("redirect_uri", "")):
        raise InvalidInput("redirect_uri must be an http://127.0.0.1 or localhost loopback URL")
    if params.get("response_type") != "code":
        raise InvalidInput("response_type must be 'code'")
    if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
        raise InvalidInput("PKCE is required: code_challenge with code_challenge_method=S256")


def _login_page(params: dict[str, str], error: str = "", status: int = 200) -> HTMLResponse:
    hidden = "\n ".join(
        f'<input type="hidden" name="{k}" value="{html.escape(params[k])}">'
        for k in AUTHORIZE_PARAMS
        if params.get(k)
    )
    body = LOGIN_PAGE.substitute(
        action="authorize",
        error=f'<p class="error">{html.escape(error)}</p>' if error else "",
        hidden=hidden,
    )
    return HTMLResponse(body, status_code=status, headers=NO_STORE)


def issuer_router(issuer: BuiltinIssuer) -> APIRouter:
    router = APIRouter(prefix="/oidc", tags=["built-in OIDC issuer"])

    @router.get("/.well-known/openid-configuration")
    def discovery() -> dict[str, Any]:
        return issuer.discovery()

    @router.get("/jwks")
    def jwks() -> dict[str, Any]:
        return issuer.key.jwks()

    @router.get("/authorize", response_class=HTMLResponse)
    def authorize_form(
        response_type: str = Query(""),
        client_id: str = Query(""),
        redirect_uri: str = Query(""),
        code_challenge: str = Query(""),
        code_challenge_method: str = Query(""),
        state: str = Query(""),
        scope: str = Query(""),
        nonce: str = Query(""),
    ) -> HTMLResponse:
        params = {k: v for k, v in locals().items() if k in AUTHORIZE_PARAMS}
        _check_authorize(issuer, params)
        return _login_page(params)

    @router.post("/authorize", response_model=None)
    def authorize_submit(
        username: Annotated[str, Form()],
        password: Annotated[str, Form()],
        response_type: Annotated[str, Form()] = "",
        client_id: Annotated[str, Form()] = "",
        redirect_uri: Annotated[str, Form()] = "",
        code_challenge: Annotated[str, Form()] = "",
        code_challenge_method: Annotated[str, Form()] = "",
        state: Annotated[str, Form()] = "",
        scope: Annotated[str, Form()] = "",
        nonce: Annotated[str, Form()] = "",
    ) -> Response:
        params = {k: v for k, v in locals().items() if k in AUTHORIZE_PARAMS}
        _check_authorize(issuer, params)
        user = issuer.users.authenticate(username, password)
        if user is None:
            return _login_page(params, "Wrong user name or password.", status=401)
        code = issuer.issue_code(client_id, redirect_uri, code_challenge, user, nonce or None)
        query = {"code": code, **({"state": state} if state else {})}
        sep = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(f"{redirect_uri}{sep}{urlencode(query)}", status_code=303)

    @router.post("/token")
    def token(
        grant_type: Annotated[str, Form()] = "",
        client_id: Annotated[str, Form()] = "",
        code: Annotated[str, Form()] = "",
        redirect_uri: Annotated[str, Form()] = "",
        code_verifier: Annotated[str, Form()] = "",
        refresh_token: Annotated[str, Form()] = "",
        username: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
        scope: Annotated[str, Form()] = "",
    ) -> JSONResponse:
        try:
            issuer.check_client(client_id)
            if grant_type == "authorization_code":
                result = issuer.redeem_code(code, client_id, redirect_uri, code_verifier)
            elif grant_type == "refresh_token":
                result = issuer.refresh(refresh_token)
            elif grant_type == "password":
                result = issuer.password_grant(username, password)
            else:
                raise OAuthError(
                    "unsupported_grant_type", f"grant_type {grant_type!r} is not supported"
                )
        except OAuthError as exc:
            return JSONResponse(
                {"error": exc.error, "error_description": exc.description},
                status_code=exc.status,
                headers=NO_STORE,
            )
        return JSONResponse(result, headers=NO_STORE)

    @router.get("/userinfo")
    def userinfo(request: Request, authorization: str = Header("")) -> dict[str, Any]:
        verifier = request.app.state.verifier
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("missing bearer token")
        return verifier.verify(token.strip()).claims

    return router
