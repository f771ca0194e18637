"""The renderer registry: how a value reaches the code that draws it without importing it.

Values (`maskcheck.finding`) offer rendering helpers such as `Report.to_json()`
and `_repr_html_()` (STYLE 11: values never know their renderers). Each helper
asks this registry, at call time, for a renderer by name; the reporters fill the
registry in when `maskcheck.reporters` is imported (see its `__init__`).

Why this shape (no import cycle, counting imports inside functions):

* this module imports nothing from maskcheck, so the value layer can import it;
* `maskcheck.reporters` imports this module (and the values) to register into it:
  the import edges run reporters -> renderers <- finding, never finding -> reporters;
* the first lookup of a name not yet registered loads the provider package,
  `PROVIDER`, by its name through `importlib` (a plain string, not an import
  statement): whoever asks `Report.to_json()` gets the reporters loaded for them,
  as before, without the value layer depending on them.

Registered callables are cheap stubs that import their reporter module when
called, so importing `maskcheck.reporters` still imports no reporter.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

#: The package whose import registers the renderers (looked up by name, at call time).
PROVIDER = "maskcheck.reporters"

_RENDERERS: dict[str, Callable[..., Any]] = {}


def register(name: str, renderer: Callable[..., Any]) -> None:
    """Make `renderer` the one `lookup(name)` returns (a later registration replaces it)."""
    _RENDERERS[name] = renderer


def lookup(name: str) -> Callable[..., Any]:
    """The renderer registered as `name`, loading `PROVIDER` first when none is.

    Raises:
        LookupError: nothing registers `name`, even after loading the provider.
    """
    if name not in _RENDERERS:
        importlib.import_module(PROVIDER)
    try:
        return _RENDERERS[name]
    except KeyError:
        raise LookupError(f"no renderer registered as {name!r} "
                          f"(known: {', '.join(sorted(_RENDERERS)) or 'none'})") from None
