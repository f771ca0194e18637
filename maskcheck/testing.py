"""Moved to `maskcheck.integrations.testing`; ``maskcheck.testing`` keeps working as its stable import path.

Importing this module puts the real one in its place in `sys.modules`, so
``maskcheck.testing`` *is* `maskcheck.integrations.testing`: every name (private ones too),
identity checks and monkeypatching all reach the same module object.
"""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("maskcheck.integrations.testing")
