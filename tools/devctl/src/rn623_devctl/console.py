"""Step-by-step console output shared by the devctl commands."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape

# Logs and CI capture output: give them wide lines instead of rich's 80-column default.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def info(message: str) -> None:
    """Print a plain progress line."""
    console.print(f"  {message}", soft_wrap=True)


def warn(message: str) -> None:
    """Print a warning line."""
    console.print(f"[yellow]! {escape(message)}[/yellow]")


def error(message: str) -> None:
    """Print an error line."""
    console.print(f"[bold red]✗ {escape(message)}[/bold red]")


def block(text: str) -> None:
    """Print a block of raw text (a log tail) dimmed and indented."""
    for line in text.splitlines():
        console.print(f"    [dim]{escape(line)}[/dim]")


@contextmanager
def step(title: str) -> Iterator[None]:
    """Print ``title`` when a step starts and its duration when it succeeds."""
    console.print(f"[bold cyan]▶[/bold cyan] {escape(title)} …")
    started = time.monotonic()
    yield
    console.print(
        f"[green]✓[/green] {escape(title)} [dim]({time.monotonic() - started:.1f} s)[/dim]"
    )
