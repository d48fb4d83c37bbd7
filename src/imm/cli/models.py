"""``imm models``: upload, list, view and delete model versions of a tenant."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichBar

from imm.cli.common import api_client, fail, tenant_config
from imm.cli.config import CliConfig
from imm.cli.oidc import LoginError, token_provider
from imm.cli.output import Output, console, errors, show
from imm.client import Client
from imm.domain.errors import InvalidInput
from imm.domain.names import check_name, check_version
from imm.upload import (
    PART_MB_DEFAULT,
    Interrupted,
    Uploader,
    UploadError,
    UploadRequest,
    UploadResult,
)

app = typer.Typer(help="Upload, list, view and delete model versions.")
COLUMNS = ("name", "version", "size", "files", "createdAt")
INTERRUPTED_EXIT = 130  # what a shell reports for a command stopped by Ctrl-C


class BarProgress:
    """The engine's progress as a rich bar on stderr (bytes, rate, ETA); stdout stays
    free for the summary, which scripts may read as JSON."""

    def __init__(self, out: Console) -> None:
        self.bar = RichBar(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=out,
        )
        self.task: TaskID | None = None
        self.running = False

    def begin(self, total_bytes: int, files: int, parts: int) -> None:
        self.task = self.bar.add_task(f"{files} file(s), {parts} part(s)", total=total_bytes)
        self.bar.start()
        self.running = True

    def advance(self, nbytes: int) -> None:
        if self.task is not None:
            self.bar.advance(self.task, nbytes)

    def note(self, text: str) -> None:
        self.bar.console.print(f"[yellow]{text}[/yellow]", highlight=False)

    def end(self) -> None:
        if self.running:
            self.bar.stop()
            self.running = False


def upload_client(config: CliConfig, verify: bool = True) -> Client:
    """A client for many threads: token refreshes are serialised (a refresh token may be
    single-use), and a part's answer may take long (the server checks and stores it)."""
    provide, lock = token_provider(config), threading.Lock()

    def locked(force_refresh: bool) -> str | None:
        with lock:
            return provide(force_refresh)

    client = Client(config.api, locked, verify=verify)
    client.http.timeout = httpx.Timeout(60.0, read=900.0)
    return client


def summary(result: UploadResult) -> str:
    rate = result.bytes_sent / result.seconds / 2**20 if result.seconds > 0 else 0.0
    return (
        f"Uploaded {result.model} version {result.version}: {result.files} file(s), "
        f"{result.size} bytes; sent {result.parts_sent} part(s) ({result.bytes_sent} bytes, "
        f"{rate:.1f} MiB/s), skipped {result.parts_skipped} part(s) already on the server."
    )


def run_upload(
    request: UploadRequest,
    output: Output = Output.table,
    verify: bool = True,
    config: CliConfig | None = None,
) -> None:
    """Shared by ``imm models upload`` and ``python -m imm.upload``; exits non-zero on
    failure (130 after Ctrl-C)."""
    config = config or CliConfig.load()
    try:
        with upload_client(config, verify) as client:
            result = Uploader(client, request, BarProgress(errors)).run()
    except Interrupted as exc:
        raise fail(str(exc), INTERRUPTED_EXIT) from None
    except UploadError as exc:
        hint = " (run `imm login`)" if "401 " in str(exc) else ""
        raise fail(f"{exc}{hint}") from None
    except LoginError as exc:
        raise fail(str(exc)) from None
    if output is Output.json:
        show(vars(result), output)
    else:
        console.print(summary(result), highlight=False)


@app.command()
def upload(
    path: Path = typer.Argument(
        ..., help="a model file, a folder (e.g. a SavedModel), or a .tar.gz/.tgz/.tar/.zip"
    ),
    model: str = typer.Argument(..., help="model name"),
    version: int = typer.Argument(..., help="model version, a positive integer"),
    tenant: str = typer.Option(None, "--tenant", "-t", help="default: your only tenant"),
    part: int = typer.Option(
        PART_MB_DEFAULT, "--part", help="part size in MiB, 5 to 5000", show_default=True
    ),
    parallel: int = typer.Option(4, "--parallel", help="parts sent at once", show_default=True),
    resume: bool = typer.Option(
        False, "--resume", help="continue an interrupted upload (also automatic when one exists)"
    ),
    keep: bool = typer.Option(
        False, "--keep", help="on Ctrl-C keep the upload resumable instead of aborting it"
    ),
    output: Output = typer.Option(Output.table, "--output", "-o"),
) -> None:
    """Upload a model version; it is listed only once every file of it has arrived."""
    config, chosen = tenant_config(tenant)
    request = UploadRequest(path, chosen, model, version, part, parallel, resume, keep)
    run_upload(request, output, config=config)


@app.command("list")
def list_(
    tenant: str = typer.Option(None, "--tenant", "-t", help="default: your only tenant"),
    output: Output = typer.Option(Output.table, "--output", "-o"),
) -> None:
    """List the complete model versions of a tenant (size in bytes)."""
    config, chosen = tenant_config(tenant)
    with api_client(config) as client:
        models = client.list_models(chosen)
    show(models, output, COLUMNS)


@app.command()
def view(
    model: str,
    tenant: str = typer.Option(None, "--tenant", "-t", help="default: your only tenant"),
    output: Output = typer.Option(Output.table, "--output", "-o"),
) -> None:
    """Show one model's versions with their files."""
    config, chosen = tenant_config(tenant)
    _check(lambda: check_name(model, "model name"))
    with api_client(config) as client:
        detail = client.get_model(chosen, model)
    if output is Output.json:
        show(detail, output)
        return
    show(detail["versions"], output, (*COLUMNS, "paths"))


@app.command()
def delete(
    model: str,
    version: int,
    tenant: str = typer.Option(None, "--tenant", "-t", help="default: your only tenant"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Delete one model version with all its files (and any upload still open into it)."""
    config, chosen = tenant_config(tenant)
    _check(lambda: (check_name(model, "model name"), check_version(version)))
    if not yes:
        typer.confirm(f"Delete version {version} of model {model} in {chosen}?", abort=True)
    with api_client(config) as client:
        client.delete_model_version(chosen, model, version)
    console.print(f"Deleted version {version} of model {model}.", highlight=False)


def _check(validate: Callable[[], object]) -> None:
    """Refuses a bad name before any request, with the same words the API would use."""
    try:
        validate()
    except InvalidInput as exc:
        raise fail(exc.detail) from None
