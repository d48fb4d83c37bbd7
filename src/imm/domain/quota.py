"""Quota arithmetic: what a tenant's endpoints use, and whether a change still fits.

Usage is the sum over the tenant's endpoints of replicas x per-replica resources, the same
sum a Kubernetes ResourceQuota keeps, so both runtimes refuse the same requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from imm.domain.errors import Conflict, InvalidInput
from imm.domain.quantities import MAX_ENDPOINTS, RESOURCE_KEYS, parse

Gi, Mi, Ki = Decimal(2**30), Decimal(2**20), Decimal(2**10)


@dataclass(frozen=True)
class Footprint:
    """One endpoint as the quota sees it."""

    name: str
    replicas: int
    resources: Mapping[str, str]

    def amount(self, key: str) -> Decimal:
        value = self.resources.get(key)
        return parse(value, key) if value is not None else Decimal(0)


def format_quantity(key: str, amount: Decimal) -> str:
    """Human-readable and still valid Kubernetes syntax (``1500m``, ``3Gi``, ``2``)."""
    if key.endswith(".cpu"):
        if amount == amount.to_integral_value():
            return str(int(amount))
        return f"{int((amount * 1000).to_integral_value())}m"
    for unit, suffix in ((Gi, "Gi"), (Mi, "Mi"), (Ki, "Ki")):
        if amount >= unit and amount % unit == 0:
            return f"{int(amount / unit)}{suffix}"
    return str(int(amount)) if amount == amount.to_integral_value() else str(amount)


def usage(endpoints: Iterable[Footprint]) -> dict[str, str | int]:
    totals = {key: Decimal(0) for key in RESOURCE_KEYS}
    count = 0
    for ep in endpoints:
        count += 1
        for key in RESOURCE_KEYS:
            totals[key] += ep.replicas * ep.amount(key)
    result: dict[str, str | int] = {"endpoints": count}
    result.update({k: format_quantity(k, v) for k, v in totals.items()})
    return result


def require_stated_keys(quota: Mapping[str, object], resources: Mapping[str, str]) -> None:
    """A quota on a key binds only endpoints that state it, so every endpoint must state it
    (as a Kubernetes ResourceQuota demands of every pod)."""
    missing = [k for k in RESOURCE_KEYS if k in quota and k not in resources]
    if missing:
        raise InvalidInput(
            f"the tenant quota sets {', '.join(missing)}, so the endpoint's resources must "
            f"state {'it' if len(missing) == 1 else 'them'}"
        )


def check_fits(
    quota: Mapping[str, object],
    others: Iterable[Footprint],
    proposed: Footprint,
    surge_from: Footprint | None = None,
    new_endpoint: bool = False,
) -> None:
    """Raise Conflict naming the first key the change would exceed.

    ``surge_from`` is the endpoint as it runs now, when the change rolls its replicas: the
    update starts one new replica before it stops an old one, so at its peak it holds
    ``replicas x max(old, new) + min(old, new)`` of every resource.
    """
    others = list(others)
    if new_endpoint and MAX_ENDPOINTS in quota and len(others) + 1 > int(quota[MAX_ENDPOINTS]):  # type: ignore[arg-type]
        raise Conflict(
            f"quota exceeded: maxEndpoints is {quota[MAX_ENDPOINTS]} and the tenant already "
            f"has {len(others)} endpoint(s)"
        )
    for key in RESOURCE_KEYS:
        if key not in quota:
            continue
        limit = parse(quota[key], key)
        in_use = sum((ep.replicas * ep.amount(key) for ep in others), Decimal(0))
        new = proposed.amount(key)
        if surge_from is not None and proposed.replicas > 0:
            old = surge_from.amount(key)
            needed = proposed.replicas * max(old, new) + min(old, new)
            how = "during the rolling update"
        else:
            needed = proposed.replicas * new
            how = ""
        total = in_use + needed
        if total > limit:
            raise Conflict(
                f"quota exceeded: {key} would total {format_quantity(key, total)}"
                f"{' ' + how if how else ''} ({format_quantity(key, needed)} for endpoint "
                f"{proposed.name!r} + {format_quantity(key, in_use)} in use), "
                f"limit {format_quantity(key, limit)}"
            )
