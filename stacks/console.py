"""What every ``python -m stacks`` command shares: its consoles, exit codes and one-line failure."""

from __future__ import annotations

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)

EXIT_OK, EXIT_FINDINGS, EXIT_UNUSABLE = 0, 1, 2


def fail(message: str) -> typer.Exit:
    """Bad usage or an unusable input: one line on stderr, exit 2, never a traceback."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_UNUSABLE)
