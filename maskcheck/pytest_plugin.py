"""Moved to `maskcheck.integrations.pytest_plugin`; ``maskcheck.pytest_plugin`` keeps working as its stable import path.

Importing this module puts the real one in its place in `sys.modules`, so
``maskcheck.pytest_plugin`` *is* `maskcheck.integrations.pytest_plugin`: every name (private ones too),
identity checks and monkeypatching all reach the same module object.
"""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("maskcheck.integrations.pytest_plugin")
