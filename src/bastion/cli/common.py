"""What the command modules share: the consoles, error reporting, the platform, progress."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from bastion.config import bastion_home, load_config
from bastion.errors import BastionError

console = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(fn: F) -> F:
    """Print Bastion errors as one clear line and exit 1, instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BastionError as exc:
            err.print(f"[red]error:[/red] {exc.message}", highlight=False)
            raise typer.Exit(1) from exc

    return wrapper  # type: ignore[return-value]


def _platform() -> Any:
    from bastion.platform import Platform

    return Platform.open()


def _progress() -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def _as(platform: Any, handle: str) -> Any:
    return platform.access.principal(handle)


def _protected_registry() -> Any:
    from bastion.copyright.registry import ProtectedRegistry
    from bastion.guards.copyright import CopyrightSettings

    settings = load_config().guards.settings("copyright", CopyrightSettings)
    return ProtectedRegistry(settings.registry_path(bastion_home()))
