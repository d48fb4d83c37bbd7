"""The API trusts any standard issuer it is pointed at, and only that issuer."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from fixtures.platform import Platform


def test_api_accepts_tokens_from_a_configured_external_issuer(
    make_platform: Callable[..., Platform],
) -> None:
    # A second, independent platform plays the external issuer (as Dex would).
    idp = make_platform()
    idp.add_user("frank", "admin")
    idp.add_user("grace", "team-g")
    api = make_platform(IMM_OIDC_ISSUER=idp.issuer)

    # The built-in issuer is off when an external one is configured.
    assert httpx.get(f"{api.url}/oidc/jwks").status_code == 404
    config = httpx.get(f"{api.url}/auth/config").json()
    assert config["issuer"] == idp.issuer
    assert config["builtinIssuer"] is False

    frank = idp.login("frank")["id_token"]
    response = httpx.get(f"{api.url}/tenants", headers={"Authorization": f"Bearer {frank}"})
    assert response.status_code == 200, response.text

    grace = idp.login("grace")["id_token"]
    response = httpx.get(f"{api.url}/tenants", headers={"Authorization": f"Bearer {grace}"})
    assert response.status_code == 403

    # The API's own admin, from another issuer (the IdP's keys differ), is refused.
    other = make_platform()
    stranger = other.token("admin")
    response = httpx.get(f"{api.url}/tenants", headers={"Authorization": f"Bearer {stranger}"})
    assert response.status_code == 401
    assert "issuer" in response.json()["detail"]
