"""The precision and device kind of the results in one report, and when they are mixed.

Each result records its device kind and precision (``sslinv.runtime.compute_mode``, part
of its key). The report never puts two precisions in one table (they are different
settings), but one report can still hold tables of several precisions side by side and
correlate a table at one precision with a table at another. Whitening amplifies
low-precision noise (docs/gpu.md, "Precision"), so such a report says so: one warning
from the command, a note in the HTML page, and ``precision_mixed`` in the json.

Every difference counts, fp32 against tf32 included: tf32 rounds the products of every
matmul and convolution to about 10 mantissa bits, as fp16 does, and its noise floor is
not measured yet. A result that does not record its precision (written before the
precision was part of the key) is "unknown" and never makes a report mixed.
"""

from __future__ import annotations

from sslinv.report.collect import Row, precision_rank

#: Where the user reads about the noise floor of each precision.
DOCS = '"Precision" in docs/gpu.md'
UNKNOWN = "unknown"


def by_precision(rows: list[Row]) -> dict[str, dict[str, list[str]]]:
    """``{precision: {command: [models]}}``, precisions from the most precise, then
    ``unknown``; commands and models in the order of ``rows``."""
    out: dict[str, dict[str, list[str]]] = {}
    for r in sorted(rows, key=lambda r: precision_rank(r.precision)):
        models = out.setdefault(r.precision or UNKNOWN, {}).setdefault(r.command, [])
        if r.model not in models:
            models.append(r.model)
    return out


def is_mixed(rows: list[Row]) -> bool:
    """Do the rows hold results of more than one (known) precision?"""
    return len({r.precision for r in rows if r.precision}) > 1


def mixed_warning(rows: list[Row]) -> str | None:
    """One line naming which commands and models are at which precision; None unless mixed."""
    if not is_mixed(rows):
        return None
    groups = "; ".join(
        f"{precision}: " + ", ".join(f"{command} ({', '.join(models)})" for command, models in commands.items())
        for precision, commands in by_precision(rows).items())
    return (f"this report mixes precisions ({groups}). Low precision adds noise that whitening amplifies: "
            f"compare results of one precision only (see {DOCS}), or keep one: sslinv report --precision fp32.")


def compute_labels(rows: list[Row]) -> dict[str, str]:
    """Per model, where its results were computed: ``fp32 on cuda``; several, comma-joined
    (most precise first); models whose files say nothing are left out."""
    seen: dict[str, list[tuple[str, str]]] = {}
    for r in sorted(rows, key=lambda r: (precision_rank(r.precision), r.device)):
        pair = (r.precision, r.device)
        if any(pair) and pair not in seen.setdefault(r.model, []):
            seen[r.model].append(pair)
    return {m: ", ".join(" on ".join(x for x in pair if x) for pair in pairs) for m, pairs in seen.items() if pairs}
