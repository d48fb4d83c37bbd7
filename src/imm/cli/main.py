"""The ``imm`` command."""

from __future__ import annotations

import typer

from imm.cli import admin, auth, certs, endpoints, models, tenants
from imm.cli.predict import predict

app = typer.Typer(
    name="imm",
    help="IMM, the Inference Model Manager: tenants, models and mTLS inference endpoints.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command()
def up() -> None:
    """Start the platform on this machine in the foreground (Ctrl-C stops it)."""
    from pydantic import ValidationError

    from imm.cli.common import fail
    from imm.config import load_settings
    from imm.server import serve

    try:
        settings = load_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"IMM_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise fail(f"invalid settings: {problems}") from None
    serve(settings)


app.command()(auth.login)
app.command()(auth.logout)
app.command()(auth.whoami)
app.add_typer(tenants.app, name="tenants")
app.add_typer(admin.app, name="admin")
app.add_typer(models.app, name="models")
app.add_typer(endpoints.app, name="endpoints")
app.add_typer(certs.app, name="certs")
app.command()(predict)

if __name__ == "__main__":
    app()
