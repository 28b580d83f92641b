"""``mien models``: list the vendored models, verify their sha256 and show their cards."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mien.cli.common import EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser(
        "models", help="list the vendored models, verify their sha256 and show their cards"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """One JSON line per model card; an attribute head's line also names its attribute, its
    ``maturity`` and its abstention band (``abstain_below``). mouth_open has no model file (a
    measurement on the face mesh): its maturity is in ``mien analyze --help`` and the README."""
    from mien.analyzers.attributes import CARDS
    from mien.models.registry import list_cards, verified_model_bytes

    attribute_of = {card: name for name, card in CARDS.items() if card is not None}
    for card in list_cards():
        verified_model_bytes(card)
        entry: dict[str, Any] = {
            "name": card.name,
            "version": card.version,
            "file": card.file,
            "sha256": card.sha256,
            "verified": True,
        }
        if card.key in attribute_of:
            entry["attribute"] = attribute_of[card.key]
            entry["maturity"] = card.maturity
            entry["abstain_below"] = card.abstain_below
        entry.update(
            {
                "licence": card.licence,
                "runtime": card.runtime,
                "devices": list(card.devices),
                "task": card.task,
                "input": card.input,
                "training_data": card.training_data,
                "origin": card.origin,
            }
        )
        print(json.dumps(entry))
    return EXIT_OK
