"""``mlrig serve``: the model server (see mlrig.serving)."""

from __future__ import annotations


def serve_command() -> None:
    """Serve the champion over HTTP."""
    raise NotImplementedError
