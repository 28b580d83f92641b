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
    from mien.models.registry import list_cards, verified_model_bytes

    for card in list_cards():
        verified_model_bytes(card)
        print(
            json.dumps(
                {
                    "name": card.name,
                    "version": card.version,
                    "file": card.file,
                    "sha256": card.sha256,
                    "verified": True,
                    "licence": card.licence,
                    "runtime": card.runtime,
                    "task": card.task,
                    "input": card.input,
                    "training_data": card.training_data,
                    "origin": card.origin,
                }
            )
        )
    return EXIT_OK
