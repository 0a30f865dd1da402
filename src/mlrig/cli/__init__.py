"""The ``mlrig`` command line (Typer); one module per command group."""
