"""Operation-level reader: what code maskcheck has no table row for does to padding.

A custom layer's `call` (and a Lambda's function, and a custom `compute_mask`)
is traced once on symbolic inputs into a TensorFlow graph: no data, no forward
pass on values. The padded-axis dataflow then runs over the graph's
operations, once per scenario (which input axis holds padding, on which side,
with or without the mask handed to the layer), and the result is a `Reading`:
plain values the static dataflow consults in place of a table row.

Sub-layers whose class the tables know (a Dense, an LSTM, a keras-hub
RotaryEmbedding inside a custom block) are read as one block with their
table row, not op by op, so their own masking is trusted as it is everywhere
else. Operations the reader does not know keep the layer's verdict
conservative: it is reported as assumed, and the probes can refute it.

Modules, in the order data moves through them (each imports only from those
before it):

* `effects`: `AxisEffect` and `Reading`, what the reader returns;
* `state`: the value each traced tensor carries (`State`, per padded axis a `Pad`);
* `trace`: traced-graph access: tracing a call or a loss into a program, and
  reading a graph tensor's static shape and constant value;
* `rules`: one small rule per operation type, in `AXIS_RULES`, with a
  conservative default for operations the table lacks;
* `interpret`: the one loop over a traced program applying the rules;
* `reader`: the entry points, `read_layer` and `read_loss`.
"""

from __future__ import annotations

from maskcheck.static.ops.effects import MIXING_KIND, AxisEffect, Reading
from maskcheck.static.ops.reader import forget_readings, read_layer, read_loss
from maskcheck.static.ops.state import POST, PRE
from maskcheck.static.ops.trace import Slot

__all__ = ["MIXING_KIND", "POST", "PRE", "AxisEffect", "Reading", "Slot", "forget_readings",
           "read_layer", "read_loss"]
