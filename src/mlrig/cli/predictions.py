"""``mlrig predictions``: read the prediction log back."""

from __future__ import annotations

import typer

app = typer.Typer(help="Read logged predictions and feedback.", no_args_is_help=True)
