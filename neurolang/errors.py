"""The base class of every error a user's input or files can cause, and the one place that
turns such an error into one line.

Dependency-free (standard library only, nothing of neurolang, no torch): every layer, the
torch-free Lava side included, can import it.
"""

import functools


class NeurolangError(Exception):
    """A problem with the user's input or files, reported as one line.

    The command line turns any of these into ``error: <message>`` and exit code 2, never a
    traceback. Each subclass keeps the built-in base it had (``ValueError``, ``RuntimeError``),
    so that ``except ValueError`` still catches a ``ConfigError``.
    """


USER_ERRORS: tuple[type[Exception], ...] = (NeurolangError, ValueError)
"""What a command reports as one line: the project's errors, and ``ValueError``, which the
value checks of the model layers, the metrics and third-party parsers raise on bad input.
(``OSError`` gets its own wording: ``neurolang.cli.os_error_message``.)"""


def reported(fail):
    """A decorator: the command runs so that a :data:`USER_ERRORS` error ends in
    ``fail(message)`` (which prints one line and exits), never a traceback."""

    def decorate(command):
        @functools.wraps(command)
        def run(*args, **kwargs):
            try:
                return command(*args, **kwargs)
            except USER_ERRORS as err:
                fail(str(err) or type(err).__name__)
                raise  # only a ``fail`` that returns gets here

        return run

    return decorate


def reporting_commands(app, fail):
    """``app.command`` (a ``typer.Typer``'s) for a module's ``register(app, fail)``: every
    command it registers runs :func:`reported`, on the ``neurolang`` app or any other."""

    def command(*args, **kwargs):
        register = app.command(*args, **kwargs)

        def decorator(function):
            register(reported(fail)(function))
            return function

        return decorator

    return command
