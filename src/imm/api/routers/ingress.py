"""What a client needs to trust the ingress: the platform CA that signs its certificate."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from imm.api.deps import CurrentSettings
from imm.domain.errors import NotFound

router = APIRouter(tags=["ingress"])


@router.get("/ingress/ca.crt", response_class=PlainTextResponse)
def ingress_ca(cfg: CurrentSettings) -> PlainTextResponse:
    """Public: a CA certificate is no secret, and clients need it before they can verify."""
    path = cfg.platform_ca_path
    if not path.exists():
        raise NotFound("this platform publishes no ingress CA (its ingress uses another one)")
    return PlainTextResponse(path.read_text(), media_type="application/x-pem-file")
