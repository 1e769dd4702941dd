"""sslinv: measure what a self-supervised image model is invariant to.

Implements and extends the evaluation suite of Ericsson, Gouk & Hospedales,
"Why Do Self-Supervised Models Transfer? Investigating the Impact of Invariance on
Downstream Tasks" (arXiv 2111.11398).
"""

__version__ = "0.1.0"
