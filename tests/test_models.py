"""Model files are data: each has a card, and a changed file is refused on load."""

from __future__ import annotations

import hashlib

import pytest

from mien.errors import ModelIntegrityError
from mien.models import registry


def test_every_card_matches_its_file_and_has_a_licence() -> None:
    cards = registry.list_cards()
    keys = {c.key for c in cards}
    assert {"centerface", "face_mesh", "iris"} <= keys
    # Every implemented attribute that ships a learned head has its card.
    assert {"attr_smile", "attr_eyes", "attr_mask", "attr_eyeglasses", "attr_sunglasses"} <= keys
    for card in cards:
        blob = card.path.read_bytes()
        assert hashlib.sha256(blob).hexdigest() == card.sha256
        assert card.licence.split(" ")[0] in {"MIT", "Apache-2.0"}
        assert card.training_data and card.origin and card.input
        assert (registry.CARDS_DIR.parent / "licenses").is_dir()


def test_tampered_model_is_refused(tmp_path, monkeypatch) -> None:
    card = registry.load_card("iris")
    bad = bytearray(card.path.read_bytes())
    bad[1000] ^= 0xFF
    (tmp_path / card.file).write_bytes(bytes(bad))
    monkeypatch.setattr(registry, "DATA_DIR", tmp_path)
    monkeypatch.setattr(registry, "_verified", {})
    with pytest.raises(ModelIntegrityError, match="sha256"):
        registry.verified_model_bytes(card)


def test_missing_model_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(registry, "DATA_DIR", tmp_path)
    monkeypatch.setattr(registry, "_verified", {})
    with pytest.raises(ModelIntegrityError, match="missing"):
        registry.verified_model_bytes(registry.load_card("centerface"))
