"""Model cards and verified loading of the model files that ship inside the package.

Models are data: each lives in ``mien/models/data`` and is described by a TOML card in
``mien/models/cards`` (name, version, sha256, licence, origin, training data, input spec).
:func:`verified_model_bytes` reads a model file, checks its sha256 against the card, and
returns the bytes; nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import tomllib

from mien.errors import ModelIntegrityError
from mien.types import ModelInfo

_PACKAGE_DIR = Path(str(resources.files("mien.models")))
CARDS_DIR = _PACKAGE_DIR / "cards"
DATA_DIR = _PACKAGE_DIR / "data"

_REQUIRED = ("name", "version", "file", "sha256", "licence", "origin", "training_data", "input")


@dataclass(frozen=True)
class ModelCard:
    """What a model is, where it comes from, and how to check the file that holds it."""

    key: str
    name: str
    version: str
    file: str
    sha256: str
    licence: str
    origin: str
    training_data: str
    input: str
    runtime: str = ""
    task: str = ""
    #: attribute heads: how far the attribute can be trusted ("stable" or
    #: "experimental: <measured reason>"), and the confidence below which its answers are
    #: withheld (chosen on validation data by train/abstention.py); None for other models
    maturity: str | None = None
    abstain_below: float | None = None
    #: where mien runs the model (``--device``): every model runs on the CPU; a card lists
    #: ``"cuda"`` too when the model follows ``--device cuda`` (the detector). LiteRT (mesh,
    #: iris) has no CUDA delegate here.
    devices: tuple[str, ...] = ("cpu",)

    @property
    def path(self) -> Path:
        return DATA_DIR / self.file

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            name=self.name,
            version=self.version,
            sha256=self.sha256,
            maturity=self.maturity,
            abstain_below=self.abstain_below,
        )


def load_card(key: str) -> ModelCard:
    """Read the card ``cards/<key>.toml``."""
    path = CARDS_DIR / f"{key}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ModelIntegrityError(f"model card {path} cannot be read: {exc}") from exc
    missing = [f for f in _REQUIRED if not data.get(f)]
    if missing:
        raise ModelIntegrityError(f"model card {path} lacks {', '.join(missing)}")
    band = data.get("abstain_below")
    if band is not None and (
        isinstance(band, bool) or not isinstance(band, int | float) or not 0.5 <= band <= 1.0
    ):
        raise ModelIntegrityError(f"model card {path}: abstain_below must be a number in [0.5, 1]")
    maturity = data.get("maturity")
    if maturity is not None and (
        not isinstance(maturity, str)
        or not (maturity == "stable" or maturity.startswith("experimental: "))
    ):
        raise ModelIntegrityError(
            f'model card {path}: maturity must be "stable" or "experimental: <reason>"'
        )
    return ModelCard(
        key=key,
        name=str(data["name"]),
        version=str(data["version"]),
        file=str(data["file"]),
        sha256=str(data["sha256"]).lower(),
        licence=str(data["licence"]),
        origin=str(data["origin"]),
        training_data=str(data["training_data"]),
        input=str(data["input"]),
        runtime=str(data.get("runtime", "")),
        task=str(data.get("task", "")),
        maturity=maturity,
        abstain_below=None if band is None else float(band),
        devices=_devices(data.get("devices", ["cpu"]), path),
    )


def _devices(value: object, path: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or "cpu" not in value or not set(value) <= {"cpu", "cuda"}:
        raise ModelIntegrityError(f'model card {path}: devices must list "cpu" (and "cuda")')
    return tuple(str(v) for v in value)


def list_cards() -> list[ModelCard]:
    """Every model card that ships with this installation."""
    return [load_card(p.stem) for p in sorted(CARDS_DIR.glob("*.toml"))]


#: Attribute name -> the model card of its own head, which holds the attribute's abstention band
#: (``abstain_below``) and ``maturity``. ``mouth_open`` has no learned head (a measurement on the
#: face mesh, mien.analyzers.attributes.mouth): its band and maturity are the two constants below.
ATTRIBUTE_CARDS: dict[str, str | None] = {
    "eyeglasses": "attr_eyeglasses",
    "sunglasses": "attr_sunglasses",
    "smile": "attr_smile",
    "eyes_open": "attr_eyes",
    "mouth_open": None,
    "mask": "attr_mask",
    "headwear": "attr_headwear",
}
#: mouth_open's maturity (as a card's ``maturity``).
MOUTH_OPEN_MATURITY = "experimental: accuracy 0.914 on HELEN faces (no labelled training data)"
#: mouth_open's abstention band (as a card's ``abstain_below``): chosen by train/abstention.py,
#: which rewrites this line.
MOUTH_OPEN_ABSTAIN_BELOW: float | None = 0.92


def attribute_trust(name: str) -> tuple[str, float | None]:
    """``(maturity, abstain_below)`` of attribute ``name``: from its head's model card (read, not
    verified: no model file is loaded), or the mouth_open constants above."""
    key = ATTRIBUTE_CARDS[name]
    if key is None:
        return MOUTH_OPEN_MATURITY, MOUTH_OPEN_ABSTAIN_BELOW
    card = load_card(key)
    return card.maturity or "experimental: no maturity stated", card.abstain_below


_verified: dict[str, bytes] = {}
_lock = threading.Lock()


def verified_model_bytes(card: ModelCard) -> bytes:
    """Return the model file's bytes after checking its sha256 against the card.

    The check runs once per process and file; later calls return the cached bytes.
    """
    with _lock:
        cached = _verified.get(card.key)
        if cached is not None:
            return cached
        try:
            blob = card.path.read_bytes()
        except OSError as exc:
            raise ModelIntegrityError(
                f"model file for {card.name} is missing at {card.path}: {exc}"
            ) from exc
        digest = hashlib.sha256(blob).hexdigest()
        if digest != card.sha256:
            raise ModelIntegrityError(
                f"model file {card.path} has sha256 {digest}, but its model card says "
                f"{card.sha256}; the file was changed or damaged, refusing to load it"
            )
        _verified[card.key] = blob
        return blob
