"""How a run stops: the user's Ctrl-C and SIGTERM end it; anything else user code raises ends
one target.

User code runs inside a check by design (a factory target, `--import` modules, `--data
module:function`, custom layers' `call`). Whatever it raises, `SystemExit` and other
`BaseException`s included, is that target's error: a factory that calls `sys.exit(0)`
must not end the run with exit 0 while other targets were never checked. Only the
person at the keyboard (Ctrl-C: exit 130) or the process manager (SIGTERM: exit 143)
stops the whole run; both unwind through `finally:` blocks, so temporary files go.

Standard library only: the CLI installs the SIGTERM handler before Keras is imported.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Any, Iterator


class Terminated(BaseException):
    """SIGTERM arrived. A BaseException (like KeyboardInterrupt) so no `except Exception`
    in user or library code swallows it, and `finally:` clean-ups still run."""


#: What stops the whole run rather than one target.
RUN_STOPS = (KeyboardInterrupt, Terminated)

#: Exit status and stderr line for each way the run stops (128 + signal number, as shells do).
STOP_EXITS = {
    KeyboardInterrupt: (130, "interrupted (Ctrl-C); stopped before the report"),
    Terminated: (143, "terminated (SIGTERM); stopped before the report"),
}


def stop_exit(exc: BaseException) -> tuple[int, str]:
    """The exit status and one-line reason for a run stopped by `exc` (one of RUN_STOPS)."""
    for kind, result in STOP_EXITS.items():
        if isinstance(exc, kind):
            return result
    raise TypeError(f"{type(exc).__name__} does not stop the run")


#: the stop that arrived during this run, kept because library code may swallow it: Keras's
#: `.keras` loader catches everything (a bare `except:`) around extracting the weights
_pending: list[BaseException] = []


def _on_sigterm(_signum: int, _frame: Any) -> None:
    _pending.append(Terminated())
    raise _pending[-1]


def _on_sigint(_signum: int, _frame: Any) -> None:
    _pending.append(KeyboardInterrupt())
    raise _pending[-1]


def raise_pending() -> None:
    """Raise again a Ctrl-C or SIGTERM that arrived in this run, in case a library swallowed
    it; called after each load and between targets."""
    if _pending:
        raise _pending[0]


@contextlib.contextmanager
def stops_unwind() -> Iterator[None]:
    """Within the block SIGTERM raises `Terminated` and Ctrl-C `KeyboardInterrupt`, each
    remembered for `raise_pending` (main thread only: elsewhere signals cannot be set); the
    previous handlers come back after, so a host process (a test runner calling the CLI
    in-process) keeps its own."""
    _pending.clear()
    previous = {}
    try:
        for signum, handler in ((signal.SIGTERM, _on_sigterm), (signal.SIGINT, _on_sigint)):
            previous[signum] = signal.signal(signum, handler)
    except (ValueError, OSError):  # not the main thread, or a platform without the signal
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _pending.clear()


def user_exit(exc: BaseException, *, verb: bool = True) -> str:
    """One line for what user code raised: `sys.exit` is named as such, since a SystemExit
    from a factory or a data function is the likeliest way code meant for a script ends a
    check. `verb=False` gives "Type: message" for anything else (as import errors read)."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    text = text if len(text) <= 300 else text[:297] + "..."
    return ("raised " if verb else "") + type(exc).__name__ + (f": {text}" if text else "")
