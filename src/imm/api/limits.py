"""Request-body limits, enforced before a handler reads anything.

JSON bodies are small, so they are buffered here whole (a chunked body without
Content-Length is held to the same limit). The routes that take large bodies (a model part
upload) are exempt and enforce their own limit while streaming. Starlette's own limiter
answers in text/plain; this one speaks problem+json like every other error.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imm.api.problems import problem

STREAMING_ROUTES = (re.compile(r"^/tenants/[^/]+/upload$"),)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(r.match(scope["path"]) for r in STREAMING_ROUTES):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body is larger than {self.max_body} bytes"
        await problem(413, detail, {"Connection": "close"})(scope, receive, send)
