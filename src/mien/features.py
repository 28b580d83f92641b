"""Feature names: what a caller may ask mien to compute, and what mien refuses to compute.

mien describes what a face *shows*. It never infers who a person is or what group they
belong to. :func:`parse_features` is the single gate every entry point (library, CLI,
HTTP API) passes requested names through, before any image is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mien.errors import RefusedAttributeError, UnknownFeatureError

#: Features computed when the caller names none.
DEFAULT_FEATURES: tuple[str, ...] = ("detection", "landmarks", "head_pose", "quality")

#: Geometry and quality features, computed for every face.
CORE_FEATURES: tuple[str, ...] = ("detection", "landmarks", "head_pose", "quality", "mesh")

#: Every observable attribute mien may report, in output order. Only the names live here, so
#: that this gate (and ``import mien``) loads no model code; each name's analyzer is listed in
#: :data:`mien.analyzers.attributes.IMPLEMENTATIONS` (tests/test_layers.py checks the two agree).
ATTRIBUTE_FEATURES: tuple[str, ...] = (
    "eyeglasses",
    "sunglasses",
    "smile",
    "eyes_open",
    "mouth_open",
    "mask",
    "headwear",
)

#: Every feature this version of mien can compute, in output order: the core ones, then the
#: observable attributes.
AVAILABLE_FEATURES: tuple[str, ...] = CORE_FEATURES + ATTRIBUTE_FEATURES

#: Features that need the dense face mesh to be run.
MESH_FEATURES: frozenset[str] = frozenset({"landmarks", "head_pose", "mesh"})

# Whole names (after normalisation) that are refused.
_REFUSED_NAMES: frozenset[str] = frozenset(
    {
        "skin_colour",
        "skin_color",
        "skin_tone",
        "skintone",
        "skin_type",
        "complexion",
        "ethnic_group",
        "ethnic_origin",
        "national_origin",
        "country_of_origin",
        "sexual_orientation",
        "political_affiliation",
        "political_opinion",
        "face_id",
        "faceid",
        "person_id",
        "personid",
        "who",
        "name",
        "lookalike",
        "face_print",
        "faceprint",
        "feature_vector",
        "face_vector",
        "biometric_template",
        "facial_expression",
        "expression",
        "fer",
    }
)

# Single words: a requested name is refused when any of its words is one of these
# (so "apparent_age", "gender-presentation" and "face embedding" are refused too).
_REFUSED_WORDS: frozenset[str] = frozenset(
    {
        # ethnicity, race, ancestry, nationality, religion, caste
        "ethnicity",
        "ethnic",
        "ethnicities",
        "race",
        "races",
        "racial",
        "ancestry",
        "heritage",
        "nationality",
        "nationalities",
        "citizenship",
        "religion",
        "religious",
        "faith",
        "caste",
        "tribe",
        "tribal",
        "minority",
        "minorities",
        "skin",
        "colour",
        "color",
        # gender, sex, sexuality
        "gender",
        "genders",
        "sex",
        "sexes",
        "male",
        "female",
        "masculinity",
        "femininity",
        "sexuality",
        "lgbt",
        "lgbtq",
        # age
        "age",
        "ages",
        "aged",
        "agegroup",
        "age_group",
        "age_range",
        "birthyear",
        "child",
        "minor",
        "adult",
        "elderly",
        # emotion and mood
        "emotion",
        "emotions",
        "emotional",
        "mood",
        "moods",
        "affect",
        "affective",
        "sentiment",
        "feeling",
        "feelings",
        "happiness",
        "happy",
        "sadness",
        "sad",
        "anger",
        "angry",
        "fear",
        "disgust",
        "surprise",
        "contempt",
        "valence",
        "arousal",
        # identity, recognition, embeddings, templates
        "identity",
        "identities",
        "identify",
        "identification",
        "recognition",
        "recognise",
        "recognize",
        "reidentification",
        "reid",
        "verification",
        "verify",
        "embedding",
        "embeddings",
        "template",
        "templates",
        "encoding",
        "encodings",
        "descriptor",
        "descriptors",
        "similarity",
        "matching",
        "celebrity",
        "biometric",
        "biometrics",
        # politics, disability (group membership)
        "politics",
        "political",
        "disability",
        "disabled",
    }
)

# Stems that are refused anywhere inside a name, for run-together forms.
_REFUSED_STEMS: tuple[str, ...] = (
    "ethnic",
    "racial",
    "ancestr",
    "nationalit",
    "religio",
    "gender",
    "sexual",
    "emotion",
    "sentiment",
    "identit",
    "identif",
    "recogni",
    "embedding",
    "template",
    "biometric",
    "faceprint",
    "faceid",
    "skintone",
    "skincolo",
)

REFUSAL_MESSAGE = (
    "mien does not infer who a person is or what group they belong to, and refused: {names}. "
    "There is no ethnicity, race, skin colour, nationality, religion, gender or sex, age, "
    "emotion or mood, identity, recognition, embedding or template in mien, behind no flag, "
    "plugin or rule. Face analysis of that kind has been sold to single out ethnic minorities "
    "for surveillance and censorship; mien is built so that it cannot be that tool. "
    "It describes only what a face shows (where it is, its landmarks, head pose, image "
    "quality and observable attributes such as glasses or a mask). See docs/refusal.md."
)


def normalise_name(name: str) -> str:
    """Lower-case a feature name and turn spaces, dashes and dots into underscores."""
    return re.sub(r"[\s\-.]+", "_", name.strip().lower()).strip("_")


def is_refused(name: str) -> bool:
    """True when ``name`` asks for identity or group membership (see :data:`REFUSAL_MESSAGE`)."""
    norm = normalise_name(name)
    if not norm:
        return False
    if norm in _REFUSED_NAMES or norm in _REFUSED_WORDS:
        return True
    words = [w for w in norm.split("_") if w]
    if any(w in _REFUSED_WORDS for w in words):
        return True
    # Also catch run-together forms such as "faceembedding" or "genderlabel".
    return any(stem in norm for stem in _REFUSED_STEMS)


def check_refused(names: Iterable[str]) -> None:
    """Raise :class:`RefusedAttributeError` when any of ``names`` is refused."""
    refused = [n for n in names if is_refused(n)]
    if refused:
        raise RefusedAttributeError(refused, REFUSAL_MESSAGE.format(names=", ".join(refused)))


def parse_features(requested: str | Iterable[str] | None) -> tuple[str, ...]:
    """Validate requested feature names and return them in canonical order.

    ``requested`` may be ``None`` (the defaults), a comma-separated string, or an iterable
    of names. ``"all"`` selects every available feature. Refused names raise
    :class:`RefusedAttributeError`; unknown ones raise :class:`UnknownFeatureError`.
    ``detection`` is always included: every other feature is computed per detected face.
    """
    if requested is None:
        return DEFAULT_FEATURES
    raw = requested.split(",") if isinstance(requested, str) else list(requested)
    names = [n for n in (str(r).strip() for r in raw) if n]
    check_refused(names)
    chosen: set[str] = {"detection"}
    unknown: list[str] = []
    for name in names:
        norm = normalise_name(name)
        if norm == "all":
            chosen.update(AVAILABLE_FEATURES)
        elif norm == "default":
            chosen.update(DEFAULT_FEATURES)
        elif norm in AVAILABLE_FEATURES:
            chosen.add(norm)
        else:
            unknown.append(name)
    if unknown:
        raise UnknownFeatureError(
            f"unknown feature(s): {', '.join(unknown)}; available: "
            f"{', '.join(AVAILABLE_FEATURES)} (or 'all')"
        )
    return tuple(f for f in AVAILABLE_FEATURES if f in chosen)
