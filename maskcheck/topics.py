"""Help topics that are not rules (`maskcheck --explain padding`). Plain text, no imports,
so `--explain` stays instant."""

from __future__ import annotations

PADDING = """\
padding: what maskcheck treats as padding

In order of precedence:

1. Real data you pass (--data FILE.npz or --data module:function, data= in the
   API, the first training batch for the fit callback). maskcheck reads from
   the batches themselves: the mask ('mask' or 'lengths' arrays, an explicit
   mask input, else the pad value), the pad value (the model's: 0 for
   Embedding(mask_zero=True), Masking's mask_value, a lookup's mask_token; 0
   for token ids; else the constant step that begins or ends most samples,
   such as -1), each sample's padding side (pre, post, none: mixed sides in one
   batch are fine), what padded label positions hold (0, -100, ...) and the
   sample weights. --data-batches N reads N batches (default 1), never the
   whole dataset. The data rules MC401-MC404 run on it.
2. Explicit mask inputs: an integer or boolean input named padding_mask,
   attention_mask, mask or <name>_mask (or declared: --mask-input IN=MASK).
3. Mask generators in the graph: Embedding(mask_zero=True), Masking(mask_value=v),
   any layer whose compute_mask returns a mask.
4. Variable-length axes: an input axis declared None after the batch axis
   (both spatial axes of (None, None, C) images).
5. Axes you declare: --padded INPUT:AXIS (repeatable; padded=("image:1",
   "image:2") in the API, padded = ["image:1"] in [tool.maskcheck]).
6. The token convention: an input whose values index an Embedding (directly,
   through lookup layers, or inside a custom layer), whatever its dtype or
   length, is taken to be padded with token 0 along axis 1, on either side
   (pad_sequences pads on the left by default, TextVectorization on the
   right, so both are probed). Every finding that rests on it says so in
   its message and in evidence.assumed. It keeps its rule's severity, so a
   leak under the convention fails CI at the default --fail-on.

Float inputs of fixed length with no mask are not assumed padded (a CNN on
images you pad yourself): maskcheck notes that it skipped the probes and how
to declare the axes, e.g. --padded image:1 --padded image:2.

--padded none (padded = [] in [tool.maskcheck], padded="none" in the API)
says the model's inputs are never padded: it turns off items 4 and 6. Masks
the model itself generates (items 2 and 3) still count.
"""

TOPICS = {"padding": PADDING}
