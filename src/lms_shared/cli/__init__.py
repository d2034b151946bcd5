"""The ``lms-shared`` command line (typer, rich output)."""

from lms_shared.cli._app import app, main

__all__ = ["app", "main"]
