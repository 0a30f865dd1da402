"""Entry point: builds the Typer app and maps MlrigError to exit codes, once.

Only Typer and the command modules are imported here; every heavy library (MLflow, Prefect,
pandas, scikit-learn) is imported inside the command that needs it, so ``--help`` stays fast.
"""

from __future__ import annotations

import sys

import typer

from mlrig._version import __version__
from mlrig.cli import (
    doctor,
    loop,
    models,
    monitor,
    predict,
    predictions,
    run,
    schedule,
    serve,
    server,
    tune,
    ui,
)
from mlrig.errors import MlrigError

app = typer.Typer(
    name="mlrig",
    help="mlrig — train, track, register, serve and monitor models on a laptop or a team's servers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("run")(run.run_command)
app.command("tune")(tune.tune_command)
app.command("ui")(ui.ui_command)
app.command("serve")(serve.serve_command)
app.command("predict")(predict.predict_command)
app.command("monitor")(monitor.monitor_command)
app.command("retrain")(loop.retrain_command)
app.command("loop")(loop.loop_command)
app.command("server")(server.server_command)
app.command("doctor")(doctor.doctor_command)
app.add_typer(models.app, name="models")
app.add_typer(predictions.app, name="predictions")
app.add_typer(schedule.app, name="schedule")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlrig {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """mlrig — the MLOps loop: ingest, train, track, register, serve, monitor, retrain."""


def main() -> None:
    try:
        app()
    except MlrigError as exc:
        from mlrig.redact import redact_text

        # the last line of defence: a message quoting a URL never shows its credentials
        sys.stderr.write(f"error: {redact_text(str(exc))}\n")
        sys.exit(exc.exit_code)
    except Exception as exc:  # an MLflow server lost mid-command: named, no traceback
        from mlrig.tracking.store import lost_server_error

        if (lost := lost_server_error(exc)) is None:
            raise
        sys.stderr.write(f"error: {lost}\n")
        sys.exit(lost.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
