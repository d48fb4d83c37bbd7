"""Quota arithmetic and the names that reach certificates, hosts and storage."""

from __future__ import annotations

from decimal import Decimal

import pytest

from imm.domain.errors import Conflict, InvalidInput
from imm.domain.names import check_name, check_subject_name, check_version
from imm.domain.quantities import normalize_quota, normalize_resources, parse
from imm.domain.quota import Footprint, check_fits, format_quantity, require_stated_keys, usage


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", "0.5"), ("2", "2"), ("1.5", "1.5"), ("512Mi", str(512 * 2**20)),
     ("2Gi", str(2 * 2**30)), ("1e3", "1000"), ("1k", "1000"), ("0", "0")],
)  # fmt: skip
def test_kubernetes_quantities_parse(text: str, value: str) -> None:
    assert parse(text, "key") == Decimal(value)


@pytest.mark.parametrize("text", ["two", "-1", "1.5.3", "", "Gi", "5 m", "1ZZ"])
def test_bad_quantities_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse(text, "limits.cpu")


def test_quota_normalisation() -> None:
    assert normalize_quota({"limits.cpu": 2, "maxEndpoints": "3"}) == {
        "limits.cpu": "2",
        "maxEndpoints": 3,
    }
    with pytest.raises(InvalidInput, match=r"at least requests\.cpu"):
        normalize_quota({"requests.cpu": "1", "limits.cpu": "500m"})
    with pytest.raises(InvalidInput, match="maxEndpoints"):
        normalize_quota({"maxEndpoints": True})
    with pytest.raises(InvalidInput, match="unknown resource"):
        normalize_resources({"maxEndpoints": 1})


def ep(name: str, replicas: int, **resources: str) -> Footprint:
    return Footprint(name, replicas, {k.replace("_", "."): v for k, v in resources.items()})


def test_usage_sums_replicas_times_resources() -> None:
    total = usage([ep("a", 2, limits_cpu="500m", limits_memory="1Gi"), ep("b", 3, limits_cpu="1")])
    assert total["endpoints"] == 2
    assert total["limits.cpu"] == "4"
    assert total["limits.memory"] == "2Gi"
    assert total["requests.cpu"] == "0"


def test_fits_and_the_refusal_names_key_total_and_limit() -> None:
    quota = {"limits.cpu": "2", "maxEndpoints": 2}
    check_fits(
        quota, [ep("a", 2, limits_cpu="500m")], ep("b", 2, limits_cpu="500m"), new_endpoint=True
    )
    with pytest.raises(Conflict) as refused:
        check_fits(quota, [ep("a", 2, limits_cpu="500m")], ep("b", 3, limits_cpu="500m"))
    message = str(refused.value)
    assert "limits.cpu" in message and "2500m" in message and "limit 2" in message
    with pytest.raises(Conflict, match="maxEndpoints"):
        check_fits(quota, [ep("a", 0), ep("b", 0)], ep("c", 0), new_endpoint=True)


def test_rolling_update_needs_room_for_one_surge_replica() -> None:
    quota = {"limits.memory": "4Gi"}
    running = ep("a", 3, limits_memory="1Gi")
    # Same size: 3 x 1Gi + 1 surge = 4Gi fits exactly.
    check_fits(quota, [], ep("a", 3, limits_memory="1Gi"), surge_from=running)
    # Bigger replicas: 3 x 2Gi + 1Gi = 7Gi does not.
    with pytest.raises(Conflict, match="during the rolling update"):
        check_fits(quota, [], ep("a", 3, limits_memory="2Gi"), surge_from=running)
    # Without the surge the same change would have fit a 6Gi quota; with it, it needs 7Gi.
    with pytest.raises(Conflict):
        check_fits(
            {"limits.memory": "6Gi"}, [], ep("a", 3, limits_memory="2Gi"), surge_from=running
        )


def test_endpoint_must_state_keys_the_quota_sets() -> None:
    require_stated_keys({"limits.cpu": "2"}, {"limits.cpu": "1"})
    with pytest.raises(InvalidInput, match=r"limits\.cpu"):
        require_stated_keys({"limits.cpu": "2", "maxEndpoints": 3}, {})


@pytest.mark.parametrize(
    ("key", "amount", "text"),
    [("limits.cpu", Decimal("0.5"), "500m"), ("limits.cpu", Decimal(3), "3"),
     ("limits.memory", Decimal(3 * 2**30), "3Gi"),
     ("limits.memory", Decimal(1536 * 2**20), "1536Mi"),
     ("limits.memory", Decimal(1000), "1000")],
)  # fmt: skip
def test_format_quantity(key: str, amount: Decimal, text: str) -> None:
    assert format_quantity(key, amount) == text
    assert parse(text, key) == amount


@pytest.mark.parametrize("name", ["abc", "a-b-c", "x" * 63, "0ab", "ab9"])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["ab", "x" * 64, "Abc", "a_b", "-ab", "ab-", "a.b", "a b", ""])
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidInput):
        check_name(name)


@pytest.mark.parametrize("value", [0, -1, "1.0", True, 2**63, "x", None])
def test_invalid_versions(value: object) -> None:
    with pytest.raises(InvalidInput):
        check_version(value)


@pytest.mark.parametrize("cn", ["client", "svc.example.com", "a", "x" * 64, "my client (prod)"])
def test_valid_subject_names(cn: str) -> None:
    assert check_subject_name(cn) == cn


@pytest.mark.parametrize(
    "cn",
    ["", "x" * 65, "a/b", "a,b", "a=b", "a\nb", "a\tb", "a\"b", "a\\b", "a$b", " lead", "trail ",
     "caf\u00e9", "a+b", "a;b"],
)  # fmt: skip
def test_invalid_subject_names(cn: str) -> None:
    with pytest.raises(InvalidInput):
        check_subject_name(cn)
