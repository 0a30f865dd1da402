"""``mlrig schedule``: run the loop or training on a schedule, through a Prefect server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from mlrig.cli.options import ConfigOpt, HomeOpt, quiet_libraries, settings_from

app = typer.Typer(
    help="Schedule the loop or training on a Prefect server (started locally when "
    "PREFECT_API_URL is unset); list, pause, resume and stop schedules.",
    invoke_without_command=True,
    no_args_is_help=False,
)
server_app = typer.Typer(help="The local Prefect server under the mlrig home.")
app.add_typer(server_app, name="server")

NameArg = Annotated[str, typer.Argument(help="Deployment name (see `mlrig schedule list`).")]


@app.callback()
def schedule_command(
    ctx: typer.Context,
    every: Annotated[
        str | None, typer.Option("--every", help="Interval: 30s, 2m, 1h, 1d, 1h30m.")
    ] = None,
    cron: Annotated[
        str | None, typer.Option("--cron", help="Cron expression, e.g. '0 3 * * *'.")
    ] = None,
    flow: Annotated[
        str, typer.Option("--flow", help="loop (monitor, maybe retrain) or train (always train).")
    ] = "loop",
    name: Annotated[
        str | None,
        typer.Option("--name", help="Deployment name (default: mlrig-FLOW-MODEL)."),
    ] = None,
    pool: Annotated[
        str | None,
        typer.Option("--pool", help="Deploy to this work pool instead of serving here."),
    ] = None,
    working_dir: Annotated[
        Path | None,
        typer.Option(
            "--working-dir",
            help="With --pool: the directory the worker runs flows in (on the worker's host; "
            "relative paths in the config resolve there); default a temporary one.",
        ),
    ] = None,
    model_name: Annotated[
        str | None, typer.Option("--model-name", help="Registered model name.")
    ] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Register a scheduled deployment of the loop (or training) and run it: in this process
    (until `mlrig schedule stop NAME`; Ctrl-C pauses the schedule), or with --pool on that work
    pool's workers. Runs never overlap."""
    from mlrig.errors import ConfigError

    if ctx.invoked_subcommand is not None:
        if every is not None or cron is not None:
            raise ConfigError("--every/--cron schedule a flow: give them without a subcommand")
        return
    if working_dir is not None and pool is None:
        raise ConfigError("--working-dir is for --pool (a worker's directory); not without it")
    if flow not in ("loop", "train"):
        raise ConfigError(f"--flow {flow!r}: expected loop or train")
    from mlrig.config import find_config_file
    from mlrig.pipeline.schedule import deployment_name, schedule_spec

    spec = schedule_spec(every, cron)
    settings = settings_from(config, home, {"tracking": {"model_name": model_name}})
    config_path = find_config_file(config)
    parameters: dict[str, Any] = {
        "config": str(config_path.resolve()) if config_path else None,
        "home": str(settings.home_dir),
        "overrides": {"tracking": {"model_name": model_name}} if model_name else None,
    }
    name = name or deployment_name(flow, settings.tracking.model_name)
    _connect(settings)
    if pool is not None:
        from mlrig.pipeline.schedule import deploy_to_pool, relative_paths

        workdir = str(working_dir.resolve()) if working_dir else None
        relative = relative_paths(settings)
        if relative and workdir is None:
            typer.echo(
                f"warning   {', '.join(relative)} is relative: a worker resolves it in its own "
                "working directory (a temporary one); give an absolute path or --working-dir",
                err=True,
            )
        done = deploy_to_pool(flow, name, spec, parameters, pool, workdir)
        if done.pool_created:
            typer.echo(f"pool      {pool!r} was missing: created it (type process)", err=True)
        elif done.pool_type != "process":
            typer.echo(
                f"warning   pool {pool!r} is of type {done.pool_type!r}: its workers must be "
                "able to import mlrig and reach the home's files; a process pool is the "
                "tested setup",
                err=True,
            )
        typer.echo(
            f"schedule  {name}: flow {flow} {spec.describe()} on work pool {pool!r} "
            f"(deployment {done.id})\n"
            f"next      where mlrig is installed, with PREFECT_API_URL set: "
            f"prefect worker start --pool {pool} --type {done.pool_type}\n"
            f"check     mlrig doctor --pool {pool}  (says whether a worker polls it)",
            err=True,
        )
        return
    from mlrig.pipeline.schedule import serve

    def ready(deployment_id: str) -> None:
        typer.echo(
            f"schedule  {name}: flow {flow} {spec.describe()}, served by this process "
            f"(pid {os.getpid()}, deployment {deployment_id}); runs never overlap\n"
            f"stop      mlrig schedule stop {name}  (Ctrl-C here pauses the schedule)",
            err=True,
        )

    ended = serve(flow, name, spec, parameters, on_ready=ready)
    typer.echo(f"schedule  {name}: runner stopped ({ended})", err=True)


@app.command("list")
def list_command(
    runs: Annotated[int, typer.Option(help="Latest runs shown per schedule.")] = 5,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Schedules of mlrig flows: name, flow, schedule, active or paused, latest runs."""
    from rich.console import Console
    from rich.table import Table

    from mlrig.pipeline.schedule import list_deployments

    server = _connect(settings_from(config, home))
    deployments = list_deployments(runs)
    if not deployments:
        typer.echo(f"no mlrig schedules on {server.api_url}", err=True)
        return
    table = Table("name", "flow", "schedule", "status", "pool", "latest runs")
    for d in deployments:
        latest = ", ".join(
            f"{r.state} {r.expected:%H:%M:%S}" if r.expected else r.state for r in d.last_runs
        )
        status = "paused" if d.paused else "active"
        table.add_row(d.name, d.flow, d.schedule, status, d.pool or "—", latest or "—")
    Console().print(table)


@app.command("pause")
def pause_command(name: NameArg, config: ConfigOpt = None, home: HomeOpt = None) -> None:
    """Pause a schedule: no new runs start (a running one finishes)."""
    from mlrig.pipeline.schedule import pause

    _connect(settings_from(config, home))
    d = pause(name)
    typer.echo(f"schedule  {d.name}: paused ({d.schedule})", err=True)


@app.command("resume")
def resume_command(name: NameArg, config: ConfigOpt = None, home: HomeOpt = None) -> None:
    """Resume a paused schedule."""
    from mlrig.pipeline.schedule import resume

    _connect(settings_from(config, home))
    d = resume(name)
    typer.echo(f"schedule  {d.name}: active ({d.schedule})", err=True)


@app.command("stop")
def stop_command(name: NameArg, config: ConfigOpt = None, home: HomeOpt = None) -> None:
    """Delete a schedule; the process serving it exits within seconds."""
    from mlrig.pipeline.schedule import WATCH_S, stop

    _connect(settings_from(config, home))
    d = stop(name)
    typer.echo(
        f"schedule  {d.name}: deleted; a runner serving it exits within {WATCH_S:g} s", err=True
    )


@server_app.command("start")
def server_start_command(config: ConfigOpt = None, home: HomeOpt = None) -> None:
    """Start (or find) the local Prefect server under the mlrig home; prints its API URL."""
    server = _connect(settings_from(config, home))
    typer.echo(server.api_url)


@server_app.command("stop")
def server_stop_command(config: ConfigOpt = None, home: HomeOpt = None) -> None:
    """Stop the local Prefect server of this mlrig home (its data stays)."""
    from mlrig.pipeline.prefect_server import stop_server

    settings = settings_from(config, home)
    server = stop_server(settings)
    if server is None:
        typer.echo(f"no local Prefect server recorded under {settings.home_dir}", err=True)
    else:
        typer.echo(f"Prefect server {server.api_url} (pid {server.pid}) stopped", err=True)


def _connect(settings: Any) -> Any:
    """The Prefect server (the team's, or the local one started or reused), announced once."""
    from mlrig.pipeline.prefect_server import ensure_server, healthy

    quiet_libraries()
    server = ensure_server(settings)
    if server.pid is None and not healthy(server.api_url):
        from mlrig.errors import ConfigError

        raise ConfigError(
            f"PREFECT_API_URL {server.api_url}: no Prefect server answers there; start one "
            "(`prefect server start`) or fix PREFECT_API_URL (unset it for a local server "
            "under the mlrig home)"
        )
    typer.echo(server.describe(), err=True)
    return server
