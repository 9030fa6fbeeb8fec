"""What every ``python -m <stage>`` shares: one mapping from ``SetlistError`` to exit code and message,
and loading a provider named by a ``module:function`` setting.

Commands raise ``setlist.errors`` exceptions and never print their own errors or pick exit codes:
``App`` wraps each command so a ``SetlistError`` becomes ``error: <message>`` on stderr and the
class's ``exit_code``, with no traceback (anything else is a bug and keeps its traceback).
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from setlist.errors import InputMissing, SetlistError, UsageError

F = TypeVar("F", bound=Callable[..., Any])


def fail(exc: SetlistError) -> NoReturn:
    """Print ``error: <message>`` to stderr and exit with the error's code."""
    # soft_wrap: a path or command in the message stays on one line, copyable
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
    raise typer.Exit(exc.exit_code)


def exits_on_error(command: F) -> F:
    """Wrap a command so a ``SetlistError`` ends it through ``fail``. ``functools.wraps`` keeps the
    signature and annotations Typer reads the options from."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SetlistError as exc:
            fail(exc)

    return run  # type: ignore[return-value]  # wraps keeps the signature, which the type of run cannot say


class App(typer.Typer):
    """A ``typer.Typer`` whose every command maps ``SetlistError`` the same way. The mapping sits on
    the commands rather than around ``app()`` so it also holds when a test invokes the app."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        register = super().command(*args, **kwargs)

        def decorator(f: F) -> F:
            register(exits_on_error(f))
            return f  # the plain function stays importable and callable

        return decorator


def load_provider(spec: str, what: str, origin: str) -> Callable[..., Any]:
    """The callable ``spec`` (``package.module:function``) names. ``what`` says what it provides and
    ``origin`` which option or setting named it, for the message. A module or function that does not
    exist raises ``InputMissing`` (nothing to run yet); a malformed spec or a module that fails to
    import raises ``UsageError``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"{what}: {spec!r} ({origin}) is not of the form package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name + ".").startswith(exc.name + "."):  # the module itself, not one it imports
            raise InputMissing(f"no {what}: module {module_name} does not exist ({origin})") from None
        raise UsageError(f"cannot load the {what} {spec} ({origin}): {exc}") from None
    except Exception as exc:  # someone else's module: report it in one line, whatever broke
        raise UsageError(f"cannot load the {what} {spec} ({origin}): {type(exc).__name__}: {exc}") from None
    provider = getattr(module, attr, None)
    if provider is None:
        raise InputMissing(f"no {what}: {module_name} has no {attr} ({origin})")
    if not callable(provider):
        raise UsageError(f"{what}: {spec} ({origin}) is not callable")
    return provider


def console() -> Console:
    """The CLIs' console. In a log or CI (no terminal) rich would assume 80 columns and squeeze the
    tables into one letter per cell; a wider page keeps a row on one line. COLUMNS, when set, wins."""
    if Console().is_terminal or os.environ.get("COLUMNS"):
        return Console()
    return Console(width=140)
