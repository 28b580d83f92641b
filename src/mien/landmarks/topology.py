"""Named points of the 478-point face mesh (MediaPipe topology, subject's left/right).

Indices 0-467 are the face mesh; 468-472 are the subject's right iris (centre first) and
473-477 the subject's left iris (centre first).
"""

from __future__ import annotations

from typing import Final

# Mesh point 4 matches the annotated (iBUG 68-pt #30) nose tip better than 1 (bench/landmarks.py).
NOSE_TIP: Final = 4
CHIN: Final = 152
FOREHEAD: Final = 10
MOUTH_RIGHT: Final = 61  # subject's right mouth corner
MOUTH_LEFT: Final = 291
UPPER_LIP_INNER: Final = 13
LOWER_LIP_INNER: Final = 14

RIGHT_EYE_OUTER: Final = 33
RIGHT_EYE_INNER: Final = 133
LEFT_EYE_INNER: Final = 362
LEFT_EYE_OUTER: Final = 263
RIGHT_EYE_UPPER: Final = 159
RIGHT_EYE_LOWER: Final = 145
LEFT_EYE_UPPER: Final = 386
LEFT_EYE_LOWER: Final = 374

RIGHT_IRIS_CENTER: Final = 468
LEFT_IRIS_CENTER: Final = 473

#: Contour of each eye (16 points each), used for eye centres when no iris is available.
RIGHT_EYE_CONTOUR: Final = (
    33,
    7,
    163,
    144,
    145,
    153,
    154,
    155,
    133,
    173,
    157,
    158,
    159,
    160,
    161,
    246,
)
LEFT_EYE_CONTOUR: Final = (
    263,
    249,
    390,
    373,
    374,
    380,
    381,
    382,
    362,
    398,
    384,
    385,
    386,
    387,
    388,
    466,
)

#: Mesh points that correspond to points of the iBUG 68-point scheme (0-based 68-point index ->
#: mesh index). Only points with a clear anatomical twin are listed; the jaw line and brows of
#: the two schemes are drawn differently and are left out.
IBUG68_TO_MESH: Final[dict[int, int]] = {
    8: 152,  # chin
    27: 168,  # nose bridge, top
    # 30, 31 and 35 were 1, 98 and 327, which sit systematically off the human 300-W points
    # (mesh 1 ~0.07 inter-ocular distances below the annotated tip, 98 / 327 ~0.05 outwards).
    # 4 and the mirror pair 75 / 305 fit best on the tuning split of bench/landmarks.py (first
    # 20% of HELEN faces); on the other 80% the point errors drop from 0.071 / 0.060 / 0.046
    # to 0.040 / 0.027 / 0.026.
    30: 4,  # nose tip as annotated in 68-point sets (mesh 1 lies lower)
    31: 75,  # nose base, subject's right
    33: 2,  # below the nose tip
    35: 305,  # nose base, subject's left
    36: 33,  # right eye outer corner
    37: 160,
    38: 158,
    39: 133,  # right eye inner corner
    40: 153,
    41: 144,
    42: 362,  # left eye inner corner
    43: 385,
    44: 387,
    45: 263,  # left eye outer corner
    46: 373,
    47: 380,
    48: 61,  # mouth corner, subject's right
    51: 0,  # upper lip top, centre
    54: 291,  # mouth corner, subject's left
    57: 17,  # lower lip bottom, centre
    60: 78,  # inner mouth corner, right
    62: 13,  # inner upper lip, centre
    64: 308,  # inner mouth corner, left
    66: 14,  # inner lower lip, centre
}
