"""The stable import path of the probe API (`from maskcheck.probe import find_leak`).

The engine itself lives in `maskcheck.dynamic`; this module only re-exports
its public names so code written against 0.1.0 keeps working.
"""

from __future__ import annotations

from maskcheck.dynamic import Leak, ProbeError, find_leak, find_loss_leak

__all__ = ["Leak", "ProbeError", "find_leak", "find_loss_leak"]
