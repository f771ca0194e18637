"""The Keras backend maskcheck runs under: TensorFlow, said in one line where it cannot be.

maskcheck's probes are TensorFlow programs (`tf.function`, `GradientTape`, tf.data), so a
model is checked under Keras' TensorFlow backend. A `.keras` file is backend-portable: the
command line loads model files under TensorFlow whatever `KERAS_BACKEND` or the
`"backend"` of `keras.json` say, and tells the user once that it overrode them
(`force_tensorflow`). Code that runs inside the user's process (`maskcheck.check`, the
assertions, the pytest fixture, the fit callback) cannot change the backend Keras was
imported with, so it says so in one line with what to do (`require_tensorflow`).

Stdlib only at import time: the CLI calls this before Keras is imported.
"""

from __future__ import annotations

import json
import os
import sys
from typing import MutableMapping

#: The one backend maskcheck's probes run on.
REQUIRED = "tensorflow"


class UnsupportedBackendError(RuntimeError):
    """Keras runs on another backend than TensorFlow in this process; the message says what to do.

    Not a ValueError: no argument is wrong; the process is on a backend maskcheck cannot
    probe, and only the user's environment (or the `maskcheck` command) can change that.
    """


def keras_backend() -> str | None:
    """The backend of the Keras already imported in this process; None before Keras is imported."""
    if "keras" not in sys.modules:
        return None
    try:
        from keras import config
    except Exception:  # a half-imported Keras: nothing runs on it
        return None
    return str(config.backend())


def unsupported_line(backend: str, what: str = "maskcheck") -> str:
    """The one line said where maskcheck runs inside a process on another backend."""
    return (f"{what} needs Keras' TensorFlow backend, but this process runs Keras on {backend!r}: "
            "set KERAS_BACKEND=tensorflow before Keras is imported, or save the model "
            "(model.save('model.keras')) and run `maskcheck model.keras`, which checks model files "
            "under TensorFlow")


def require_tensorflow(backend: str | None = None, what: str = "maskcheck") -> None:
    """Raise when Keras runs on another backend than TensorFlow here.

    Args:
        backend: the backend to judge; None reads the Keras imported in this process
            (nothing is raised before Keras is imported: importing it then picks TensorFlow
            unless the environment says otherwise, and that import decides).
        what: who needs TensorFlow, for the message ("maskcheck.check", "MaskCheck").

    Raises:
        UnsupportedBackendError: one line naming the backend and what to do.
    """
    backend = keras_backend() if backend is None else backend
    if backend is not None and backend != REQUIRED:
        raise UnsupportedBackendError(unsupported_line(backend, what))


def keras_config_path(environ: MutableMapping[str, str]) -> str:
    """Where Keras reads `keras.json` (`$KERAS_HOME`, else `~/.keras`, else `/tmp/.keras`),
    found as Keras 3 finds it, without importing Keras."""
    if "KERAS_HOME" in environ:
        folder = environ["KERAS_HOME"]
    else:
        home = os.path.expanduser("~")
        folder = os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")
    return os.path.expanduser(os.path.join(folder, "keras.json"))


def configured_backend(environ: MutableMapping[str, str]) -> tuple[str, str] | None:
    """The backend Keras would be imported with, and the setting that names it
    (`KERAS_BACKEND=jax`, or the path of `keras.json`); None when nothing names one.

    As in Keras: a non-empty `KERAS_BACKEND` wins over `keras.json`'s `"backend"`."""
    value = environ.get("KERAS_BACKEND", "")
    if value:
        return value, f"KERAS_BACKEND={value}"
    path = keras_config_path(environ)
    try:
        with open(path, encoding="utf-8") as f:
            settings = json.load(f)
    except (OSError, ValueError):
        return None
    backend = settings.get("backend") if isinstance(settings, dict) else None
    if isinstance(backend, str) and backend:
        return backend, path
    return None


def force_tensorflow(environ: MutableMapping[str, str]) -> str | None:
    """Have Keras, not imported yet, load on TensorFlow; return the notice to show once, if any.

    Setting `KERAS_BACKEND=tensorflow` in `environ` overrides both the variable and
    `keras.json` (Keras reads the variable last). The notice names the setting that was
    overridden; None when nothing named another backend.

    Raises:
        UnsupportedBackendError: Keras is already imported here on another backend (an
            embedding host, not the `maskcheck` command): the environment comes too late.
    """
    require_tensorflow()
    if keras_backend() is not None:  # already on TensorFlow: nothing was overridden
        return None
    found = configured_backend(environ)
    environ["KERAS_BACKEND"] = REQUIRED
    if found is None or found[0] == REQUIRED:
        return None
    backend, where = found
    if where.startswith("KERAS_BACKEND="):
        return f"maskcheck: {where} ignored: model files are checked under TensorFlow"
    return (f"maskcheck: backend {backend!r} of {where} ignored: model files are checked under "
            "TensorFlow")
