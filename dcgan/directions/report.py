"""The text report of `dcgan directions`: per direction (grouped by kind) the networks' held-out accuracy, the
positive rates and the effect at each amount, then the quality table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dcgan.directions.effect import _side_effect_amount
from dcgan.directions.kinds import KINDS
from dcgan.directions.store import directions_of


def format_report(result: Mapping[str, Any]) -> str:
    """A text table: per direction (grouped by kind), held-out classifier accuracy, positive rates, and the score
    change at each amount (the effect); then the quality table (dcgan.edit_quality.format_quality)."""
    amounts = [a for a in result["amounts"] if a != 0]
    head = (f"{'direction':<26} {'acc':>5} {'bal':>5} {'judge':>5} {'real+':>6} {'gen+':>6} "
            + " ".join(f"{a:>+6g}" for a in amounts)
            + f"   most entangled (at {_side_effect_amount(result['amounts']):+g})")
    lines = [head, "-" * len(head)]

    def pct(v):
        return "   -" if v is None else f"{v:.2f}"
    for name, entry in sorted(directions_of(result).items(), key=lambda kv: KINDS.index(kv[1]["kind"])):
        attribute = result["attributes"].get(entry.get("attribute") or "", {})
        c, rate, effect = attribute.get("classifier", {}), attribute.get("positive_rate", {}), entry["effect"]
        deltas = dict(zip(effect["amounts"], effect.get("delta", [None] * len(effect["amounts"]))))
        side = ", ".join(f"{k} {v:+.2f}" for k, v in effect["side_effects"].items())
        judge = (attribute.get("judge") or {}).get("balanced_accuracy")
        lines.append(f"{name:<26} {pct(c.get('accuracy')):>5} {pct(c.get('balanced_accuracy')):>5} {pct(judge):>5} "
                     f"{pct(rate.get('real')):>6} {pct(rate.get('generated')):>6} "
                     + " ".join("     -" if deltas[a] is None else f"{deltas[a]:>+6.2f}" for a in amounts)
                     + f"   {side}")
    for name, reason in result.get("skipped", {}).items():
        lines.append(f"{name:<26} skipped: {reason}")
    lines.append("acc/bal: accuracy / balanced accuracy of the classifier on held-out real examples; judge: the "
                 "judge's balanced accuracy on the same examples; real+/gen+: share with the "
                 "attribute (real data / generated); columns ±a: change of the mean classifier score after moving "
                 "fresh samples by a along the unit direction (SeFa: no attribute, see its side effects).")
    if "control" in result.get("quality", {}):  # documents written before the judge have another table
        from dcgan.edit_quality import format_quality

        lines += ["", format_quality(result["quality"])]
    return "\n".join(lines)
