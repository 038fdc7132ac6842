"""The library's error messages, said in the command line's terms.

The library names its arguments (`probs`, or the form such as `logits`; `axis`) and offers
``validate=False``; on the command line the array is the file's (the ``.npz`` member, or
a table's prediction columns), there is no axis to choose, and validation cannot be
turned off.  :func:`in_file_terms` rewrites those phrases and nothing else.
"""

from __future__ import annotations

import re

from ._dataset import Dataset

__all__ = ["in_file_terms"]

_VALIDATE_FALSE = re.compile(r",? or pass validate=False\.?|;? pass validate=False[^.]*\.?")


def in_file_terms(message: str, dataset: Dataset) -> str:
    """``message`` with the prediction array named as in the file and no library-only advice."""
    message = _VALIDATE_FALSE.sub(".", message).replace("..", ".").replace(": .", ".")
    message = message.replace(" along `axis`", "")
    if dataset.what:
        # "`logits` (logits) must not be +inf": the file's name for the array says it once
        message = message.replace(f"`{dataset.form}` ({dataset.form})", dataset.what)
        message = message.replace(f"`probs` ({dataset.form})", dataset.what)
        message = message.replace("`probs`", dataset.what)
        message = message.replace(f"`{dataset.form}`", dataset.what)
    if dataset.labels_source:  # --labels: the labels are another file's
        message = message.replace("`labels`", f"the labels in {dataset.labels_source}")
    if dataset.dtype_hint and "must sum to 1" in message:
        message = f"{message} {dataset.dtype_hint}"
    return message
