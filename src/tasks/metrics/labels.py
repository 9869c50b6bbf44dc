"""Class labels (Banking77, custom `label` tasks): a reply matched to one of the allowed labels, or to none."""

from __future__ import annotations

import re

_LABEL_SEP = re.compile(r"[\s_\-]+")


def normalize_label(value: object) -> str:
    """Label key insensitive to case, spaces, underscores and hyphens ("Card Arrival" == "card-arrival").

    Surrounding quotes and punctuation go too, so "card_arrival." matches and Banking77's own
    "reverted_card_payment?" is reachable without its question mark.
    """
    text = _LABEL_SEP.sub("_", str(value if value is not None else "").strip().lower())
    return re.sub(r"^[\W_]+|[\W_]+$", "", text)


def match_label(value: object, labels: list[str]) -> str | None:
    """The canonical label `value` names after normalisation, None if it names none of them."""
    key = normalize_label(value)
    if not key:
        return None
    for label in labels:
        if normalize_label(label) == key:
            return label
    return None
