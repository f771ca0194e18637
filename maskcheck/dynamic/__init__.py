"""The dynamic engine: probe batches with perturbed padding, measured with the mask held fixed.

Modules follow the data one way, each importing only from those before it:
`plan` (what to probe, from the static facts) -> `batches` (probe tensors)
-> `program` (the traced functions) -> `compare` (differences -> Leak) ->
`inference`, `training`, `lossprobe`, `datameasure` (the measurements) -> `schedule` (runs
the rules' checks on each probe batch, each program once); `api` offers `find_leak` and
`find_loss_leak` for inline use, and `base_loss` (the loss the probes
compare with). Importing this package does not import Keras or TensorFlow.
"""

from __future__ import annotations

from maskcheck.dynamic.api import base_loss, find_leak, find_loss_leak
from maskcheck.dynamic.compare import Leak
from maskcheck.dynamic.plan import NoPadding, NotProbeable, ProbeError, ProbePlan, build_plan

__all__ = ["Leak", "NoPadding", "NotProbeable", "ProbeError", "ProbePlan", "base_loss",
           "build_plan", "find_leak", "find_loss_leak"]
