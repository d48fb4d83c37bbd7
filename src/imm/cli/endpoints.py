"""``imm endpoints``: create, list, view, update, scale and delete inference endpoints."""

from __future__ import annotations

import time
from typing import Any

import typer

from imm.cli.common import api_client, fail, parse_pairs, tenant_config
from imm.cli.output import Output, console, show
from imm.client import Client

app = typer.Typer(help="Inference endpoints of a tenant.")
SETTLED = {"running", "scaled to 0", "failed"}
LIST_COLUMNS = ("name", "url", "status")

TenantOpt = typer.Option(None, "--tenant", "-t", help="tenant (default: your only one)")
OutputOpt = typer.Option(Output.table, "--output", "-o")
WaitOpt = typer.Option(
    0.0, "--wait", help="seconds to wait for the endpoint to settle (running / scaled to 0)"
)


def parse_resources(items: list[str]) -> dict[str, str]:
    return parse_pairs(items, "--resource", "limits.cpu=500m")


def wait_settled(client: Client, tenant: str, name: str, timeout: float) -> dict[str, Any]:
    """Polls until the reconciler has caught up with the latest change and it settled."""
    endpoint = client.get_endpoint(tenant, name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        caught_up = endpoint["observedGeneration"] >= endpoint["generation"]
        rolled = (
            endpoint["status"] != "running" or endpoint["updatedReplicas"] >= endpoint["replicas"]
        )  # a rolling update is done only when every ready replica runs the new spec
        if caught_up and rolled and endpoint["status"] in SETTLED:
            break
        time.sleep(0.5)
        endpoint = client.get_endpoint(tenant, name)
    return endpoint


def _finish(
    client: Client, tenant: str, endpoint: dict[str, Any], wait: float, output: Output
) -> None:
    if wait > 0:
        endpoint = wait_settled(client, tenant, endpoint["name"], wait)
    show(endpoint, output)
    if wait > 0 and endpoint["status"] == "failed":
        raise fail(f"endpoint failed: {endpoint.get('lastError')}")


@app.command()
def create(
    name: str,
    model: str = typer.Option(..., "--model", "-m", help="model name"),
    version: int = typer.Option(..., "--version", "-v", help="model version"),
    subject: str = typer.Option(
        ..., "--subject", "-s", help="client certificate CN the endpoint admits"
    ),
    replicas: int = typer.Option(1, "--replicas", "-r", min=0, max=100),
    resource: list[str] = typer.Option(
        [], "--resource", help="per replica KEY=VALUE, e.g. limits.cpu=500m; repeatable"
    ),
    tenant: str = TenantOpt,
    wait: float = WaitOpt,
    output: Output = OutputOpt,
) -> None:
    """Create an endpoint serving a model version."""
    resources = parse_resources(resource)
    config, tenant = tenant_config(tenant)
    with api_client(config) as client:
        endpoint = client.create_endpoint(
            tenant, name, subject, model, version, replicas, resources
        )
        _finish(client, tenant, endpoint, wait, output)


@app.command("list")
def list_(tenant: str = TenantOpt, output: Output = OutputOpt) -> None:
    """List the tenant's endpoints with their status."""
    config, tenant = tenant_config(tenant)
    with api_client(config) as client:
        show(client.list_endpoints(tenant), output, LIST_COLUMNS)


@app.command()
def view(name: str, tenant: str = TenantOpt, output: Output = OutputOpt) -> None:
    """Show an endpoint: status, model, subject, resources, replicas, URL, last error."""
    config, tenant = tenant_config(tenant)
    with api_client(config) as client:
        show(client.get_endpoint(tenant, name), output)


@app.command()
def update(
    name: str,
    model: str = typer.Option(None, "--model", "-m"),
    version: int = typer.Option(None, "--version", "-v"),
    subject: str = typer.Option(None, "--subject", "-s"),
    resource: list[str] = typer.Option([], "--resource", help="replaces all resources"),
    tenant: str = TenantOpt,
    wait: float = WaitOpt,
    output: Output = OutputOpt,
) -> None:
    """Change the model, version, subject or resources: replicas roll one by one."""
    config, tenant = tenant_config(tenant)
    changes: dict[str, Any] = {}
    if model:
        changes["modelName"] = model
    if version is not None:
        changes["modelVersion"] = version
    if subject:
        changes["subjectName"] = subject
    if resource:
        changes["resources"] = parse_resources(resource)
    if not changes:
        raise fail("nothing to change: pass --model, --version, --subject or --resource")
    with api_client(config) as client:
        _finish(client, tenant, client.update_endpoint(tenant, name, **changes), wait, output)


@app.command()
def scale(
    name: str,
    replicas: int = typer.Argument(..., min=0, max=100, help="0 turns the endpoint off"),
    tenant: str = TenantOpt,
    wait: float = WaitOpt,
    output: Output = OutputOpt,
) -> None:
    """Set the number of replicas; 0 keeps the endpoint defined but turns it off."""
    config, tenant = tenant_config(tenant)
    with api_client(config) as client:
        _finish(client, tenant, client.scale_endpoint(tenant, name, replicas), wait, output)


@app.command()
def delete(
    name: str,
    tenant: str = TenantOpt,
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Delete an endpoint; its model stays in the registry."""
    config, tenant = tenant_config(tenant)
    if not yes:
        typer.confirm(f"Delete endpoint {name} of tenant {tenant}?", abort=True)
    with api_client(config) as client:
        client.delete_endpoint(tenant, name)
    console.print(f"Endpoint {name} deleted.")
