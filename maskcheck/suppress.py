"""Moved to `maskcheck.adoption.suppress`; ``maskcheck.suppress`` keeps working as its stable import path.

Importing this module puts the real one in its place in `sys.modules`, so
``maskcheck.suppress`` *is* `maskcheck.adoption.suppress`: every name (private ones too),
identity checks and monkeypatching all reach the same module object.
"""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("maskcheck.adoption.suppress")
