"""Resource quantities and quotas, in Kubernetes syntax (``500m``, ``1.5``, ``512Mi``, ``1e3``).

Parsing is the Kubernetes client's own ``parse_quantity``, so a quota means here exactly
what it will mean to a cluster's ResourceQuota.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from imm.domain.errors import InvalidInput

RESOURCE_KEYS = ("requests.cpu", "limits.cpu", "requests.memory", "limits.memory")
MAX_ENDPOINTS = "maxEndpoints"
QUOTA_KEYS = (*RESOURCE_KEYS, MAX_ENDPOINTS)


def parse(value: object, key: str) -> Decimal:
    """A non-negative quantity, or InvalidInput naming the key."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidInput(f"{key} must be a quantity such as '500m', '2' or '512Mi'")
    text = str(value).strip()
    if not text or any(c.isspace() for c in text):
        raise InvalidInput(f"{key}: {text!r} is not a Kubernetes quantity (no spaces allowed)")
    try:
        amount = parse_quantity(text)
    except (ValueError, ArithmeticError):
        raise InvalidInput(
            f"{key}: {text!r} is not a Kubernetes quantity (examples: '500m', '2', '512Mi')"
        ) from None
    if not amount.is_finite() or amount < 0:
        raise InvalidInput(f"{key} must not be negative, got {text!r}")
    return amount


def _check_limits_cover_requests(values: dict[str, Any], what: str) -> None:
    for kind in ("cpu", "memory"):
        req, lim = values.get(f"requests.{kind}"), values.get(f"limits.{kind}")
        if req is not None and lim is not None and parse(lim, "") < parse(req, ""):
            raise InvalidInput(
                f"{what}: limits.{kind} ({lim}) must be at least requests.{kind} ({req})"
            )


def normalize_quota(quota: object) -> dict[str, str | int]:
    """Validate a tenant quota; returns it with quantities as given and maxEndpoints an int."""
    if quota is None:
        return {}
    if not isinstance(quota, dict):
        raise InvalidInput("quota must be an object")
    unknown = sorted(set(quota) - set(QUOTA_KEYS))
    if unknown:
        raise InvalidInput(
            f"unknown quota key(s) {', '.join(unknown)}; allowed: {', '.join(QUOTA_KEYS)}"
        )
    result: dict[str, str | int] = {}
    for key in RESOURCE_KEYS:
        if key in quota:
            parse(quota[key], key)
            result[key] = str(quota[key]).strip()
    if MAX_ENDPOINTS in quota:
        count = quota[MAX_ENDPOINTS]
        if isinstance(count, str) and count.strip().isdigit():
            count = int(count)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidInput(f"{MAX_ENDPOINTS} must be an integer of at least 1")
        result[MAX_ENDPOINTS] = count
    _check_limits_cover_requests(result, "quota")
    return result


def normalize_resources(resources: object) -> dict[str, str]:
    """Validate an endpoint's per-replica resources (the quota's four resource keys)."""
    if resources is None:
        return {}
    if not isinstance(resources, dict):
        raise InvalidInput("resources must be an object")
    unknown = sorted(set(resources) - set(RESOURCE_KEYS))
    if unknown:
        raise InvalidInput(
            f"unknown resource key(s) {', '.join(unknown)}; allowed: {', '.join(RESOURCE_KEYS)}"
        )
    result = {key: str(resources[key]).strip() for key in RESOURCE_KEYS if key in resources}
    for key, value in result.items():
        parse(value, key)
    _check_limits_cover_requests(result, "resources")
    return result
