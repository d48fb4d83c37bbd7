"""``imm tenants``: platform-admin commands."""

from __future__ import annotations

from pathlib import Path

import typer

from imm.cli.common import api_client, parse_pairs
from imm.cli.output import Output, console, show

app = typer.Typer(help="Create, list, view and delete tenants (platform admins).")
COLUMNS = ("name", "scope", "quota", "createdAt")


@app.command()
def create(
    name: str,
    scope: str = typer.Option(..., "--scope", help="identity-provider group of the tenant"),
    ca_cert: Path = typer.Option(..., "--ca-cert", exists=True, dir_okay=False, readable=True),
    quota: list[str] = typer.Option(
        [], "--quota", help="KEY=VALUE, e.g. limits.cpu=4 or maxEndpoints=10; repeatable"
    ),
    output: Output = typer.Option(Output.table, "--output", "-o"),
) -> None:
    """Create a tenant with its CA certificate and quota."""
    pairs = parse_pairs(quota, "--quota", "limits.cpu=4")
    with api_client() as client:
        tenant = client.create_tenant(name, ca_cert.read_text(), scope, pairs)
    show({k: tenant[k] for k in COLUMNS}, output)


@app.command("list")
def list_(output: Output = typer.Option(Output.table, "--output", "-o")) -> None:
    """List all tenants."""
    with api_client() as client:
        tenants = client.list_tenants()
    show(
        tenants if output is Output.json else [{k: t[k] for k in COLUMNS} for t in tenants],
        output,
        COLUMNS,
    )


@app.command()
def view(name: str, output: Output = typer.Option(Output.table, "--output", "-o")) -> None:
    """Show a tenant with its quota and usage."""
    with api_client() as client:
        tenant = client.get_tenant(name)
    if output is Output.table:
        tenant = {k: v for k, v in tenant.items() if k != "cert"}
    show(tenant, output)


@app.command()
def delete(
    name: str,
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Delete a tenant with all its endpoints and models."""
    if not yes:
        typer.confirm(f"Delete tenant {name} with all its endpoints and models?", abort=True)
    with api_client() as client:
        client.delete_tenant(name)
    console.print(f"Tenant {name} deleted.")
