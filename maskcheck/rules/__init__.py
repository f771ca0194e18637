"""The rule registry: every code of SPEC section 3, in code order.

Adding a rule means adding its module here; the tuple is the registry
(no metaclass magic), so `--list-rules` and the tests see exactly this.
"""

from __future__ import annotations

from maskcheck.rule import Rule
from maskcheck.rules.mc101_mask_dropped import MaskDropped
from maskcheck.rules.mc102_unmasked_mixing import UnmaskedMixing
from maskcheck.rules.mc103_mask_shape_mismatch import MaskShapeMismatch
from maskcheck.rules.mc104_mask_never_used import MaskNeverUsed
from maskcheck.rules.mc105_false_propagation import FalsePropagation
from maskcheck.rules.mc106_batch_statistics_leak import BatchStatisticsLeak
from maskcheck.rules.mc107_padding_value_collision import PaddingValueCollision
from maskcheck.rules.mc108_absolute_positions import AbsolutePositions
from maskcheck.rules.mc109_mean_over_empty_mask import MeanOverEmptyMask
from maskcheck.rules.mc201_loss_ignores_padding import LossIgnoresPadding
from maskcheck.rules.mc202_metric_ignores_padding import MetricIgnoresPadding
from maskcheck.rules.mc203_loss_bypasses_mask import LossBypassesMask
from maskcheck.rules.mc301_padding_leak import PaddingLeak
from maskcheck.rules.mc302_cross_sample_leak import CrossSampleLeak
from maskcheck.rules.mc303_loss_leak import LossLeak
from maskcheck.rules.mc304_pad_length_sensitivity import PadLengthSensitivity
from maskcheck.rules.mc305_empty_sequence_nonfinite import EmptySequenceNonfinite
from maskcheck.rules.mc401_padding_side_mismatch import PaddingSideMismatch
from maskcheck.rules.mc402_label_padding_counted import LabelPaddingCounted
from maskcheck.rules.mc403_sample_weight_misaligned import SampleWeightMisaligned
from maskcheck.rules.mc404_pad_value_in_data import PadValueInData

ALL_RULES: tuple[type[Rule], ...] = (
    MaskDropped, UnmaskedMixing, MaskShapeMismatch, MaskNeverUsed, FalsePropagation,
    BatchStatisticsLeak, PaddingValueCollision, AbsolutePositions, MeanOverEmptyMask, LossIgnoresPadding, MetricIgnoresPadding,
    LossBypassesMask, PaddingLeak, CrossSampleLeak, LossLeak, PadLengthSensitivity,
    EmptySequenceNonfinite, PaddingSideMismatch, LabelPaddingCounted, SampleWeightMisaligned,
    PadValueInData,
)

RULES_BY_CODE = {rule.code: rule for rule in ALL_RULES}
RULES_BY_NAME = {rule.name: rule for rule in ALL_RULES}


class UnknownRuleError(ValueError):
    """A --select/--ignore entry names no rule code, prefix or name."""


def resolve_selection(entries: tuple[str, ...] | list[str]) -> frozenset[str]:
    """Turn codes, code prefixes (``MC1``) and rule names into a set of codes.

    Raises:
        UnknownRuleError: an entry matches no rule.
    """
    codes: set[str] = set()
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        if entry in RULES_BY_NAME:
            codes.add(RULES_BY_NAME[entry].code)
            continue
        matched = {code for code in RULES_BY_CODE if code.startswith(entry.upper())}
        if not matched or not entry.upper().startswith("MC"):
            known = ", ".join(RULES_BY_CODE)
            raise UnknownRuleError(f"unknown rule {entry!r}: expected a code ({known}), a prefix such as MC1, or a rule name")
        codes |= matched
    return frozenset(codes)


def selected_rules(select: frozenset[str] | None, ignore: frozenset[str]) -> tuple[type[Rule], ...]:
    """The rules left after `select` (None means all) and `ignore`."""
    return tuple(r for r in ALL_RULES
                 if (select is None or r.code in select) and r.code not in ignore)
