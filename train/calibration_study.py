"""How the calibrations of the learned heads were chosen (fourth session): reproduces the
comparisons in docs/attributes.md from the shipped heads, on calibration / validation data only.

Usage (from the repository root; needs scikit-learn and ``../shared/data``)::

    .venv/bin/python train/calibration_study.py            # every table (a few minutes)
    .venv/bin/python train/calibration_study.py eyes       # one of: eyes platt

* ``eyes``: the eyes head's scores on its calibration part (CEW and the small open sets) and on
  the face-mask VALIDATION photos' eyes (assumed open): isotonic tables fitted on the closed eyes
  repeated by random draws (as version 2 was), with exact class weights, and Platt scaling, each
  with the two eyes of a face sharing evidence or not (``eyes.OTHER_EYE_WEIGHT``); per-face
  figures cross-fitted on two halves of the calibration faces; synthetic winks.
* ``platt``: isotonic table against Platt scaling for smile (SMILEsmileD calibration part),
  eyeglasses and sunglasses (validation part, real faces) and headwear (out-of-fold scores of the
  train + validation photos), over 20 random half-splits by file / subject / photo: expected
  calibration error, log loss (clipped at 1e-3), Brier score, share of outputs exactly 0 or 1.

The heads' own raw scores are what is compared (the networks and regressions are those shipped;
isotonic and Platt fits do not depend on an affine change of the score, so a head whose Platt
calibration is folded in gives the same comparison). No test part and no evaluation-only set is
scored here; HELEN and GENKI-4K are never read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mien.analyzers.attributes import eyes, smile
from mien.analyzers.attributes.heads import Head, sigmoid
from train import train_eyes as TE
from train import train_glasses as TG
from train import train_headwear as TH
from train import train_smile as TS
from train.common import (
    SEED,
    balanced,
    class_weights,
    expected_calibration_error,
    group_split,
    platt_fit,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
#: A calibration method: fitted on (scores, labels), gives p(positive) for new scores.
Fit = Callable[[F64, I64], Callable[[F64], F64]]


def isotonic(weighted: bool = False, draw: int | None = None) -> Fit:
    """Isotonic regression of the label on sigmoid(score): unweighted, with exact class
    weights, or (``draw``) on rows where the minority class is repeated by random draws."""
    from sklearn.isotonic import IsotonicRegression

    def fit(s: F64, y: I64) -> Callable[[F64], F64]:
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        if draw is not None:
            rows = balanced(np.arange(len(y)), y, draw)
            iso.fit(sigmoid(s[rows]), y[rows])
        else:
            iso.fit(sigmoid(s), y, sample_weight=class_weights(y) if weighted else None)
        return lambda t: np.asarray(iso.predict(sigmoid(t)), np.float64)

    return fit


def platt(weighted: bool = False) -> Fit:
    def fit(s: F64, y: I64) -> Callable[[F64], F64]:
        a, b = platt_fit(s, y, weighted)
        return lambda t: sigmoid(a * np.asarray(t) + b)

    return fit


def ece(p: F64, y: I64) -> float:
    """ECE of the reported answer's confidence (as the benchmarks measure it)."""
    return expected_calibration_error(np.maximum(p, 1 - p), (p > 0.5) == (y == 1))


def halves(groups: npt.ArrayLike, y: I64, seed: int) -> npt.NDArray[np.bool_]:
    """A random half of the groups (True), the rest False; per row. Groups with a positive
    and groups without are halved separately, so that both halves hold positives (the
    sunglasses' 48 validation positives come from 3 subjects)."""
    g = np.asarray(groups)
    rng = np.random.default_rng(seed)
    with_positive = set(g[y == 1].tolist())
    pick: set[object] = set()
    for kind in (True, False):
        uniq = np.array(sorted({v for v in g.tolist() if (v in with_positive) == kind}))
        if len(uniq):
            pick |= set(rng.choice(uniq, len(uniq) // 2, replace=False).tolist())
    return np.array([v in pick for v in g.tolist()])


def crossfit(fit: Fit, s: F64, y: I64, half: npt.NDArray[np.bool_]) -> F64:
    """Calibrated p for every row, each half calibrated on the other."""
    out = np.empty(len(y))
    for a, b in ((half, ~half), (~half, half)):
        out[b] = fit(s[a], y[a])(s[b])
    return out


# ---------------------------------------------------------------------------- eyes


def eyes_scores() -> tuple[F64, I64, npt.NDArray[np.intp], F64, npt.NDArray[np.intp]]:
    """The shipped eyes head's raw scores: calibration part (score, open, face) and face-mask
    validation eyes (score, face)."""
    head = eyes.load_head()
    net = head.network()
    s: list[F64] = []
    y: list[I64] = []
    f: list[npt.NDArray[np.intp]] = []
    offset = 0
    for src in [TE.cew(), *TE.open_sources()]:
        data, owner = TE.eye_rows(src)
        rows = np.isin(owner, group_split(src.groups, TE.FRACTIONS, seed=SEED)[1])
        s.append(head.raw_scores(TE.features(net, (data[0][rows], data[1][rows])))[:, 0])
        y.append(np.full(int(rows.sum()), src.open_, np.int64))
        f.append(owner[rows] + offset)
        offset += len(src.groups)
    (_, _), (val, val_owner) = TE.facemask_eyes()
    vs = head.raw_scores(TE.features(net, val))[:, 0].astype(np.float64)
    return (
        np.concatenate(s).astype(np.float64),
        np.concatenate(y),
        np.concatenate(f),
        vs,
        val_owner,
    )


def study_eyes() -> None:
    s, y, face, vs, vface = eyes_scores()
    half = halves(face, np.zeros_like(y), 0)  # not stratified: both classes are plentiful
    rng = np.random.default_rng(1)
    wink_closed, wink_open = rng.choice(s[y == 0], 5000), rng.choice(s[y == 1], 5000)
    variants: list[tuple[str, list[Fit]]] = [
        (
            "isotonic, closed eyes repeated by random draws (v2: first draw)",
            [isotonic(draw=d) for d in (SEED + 1, SEED, SEED + 2, SEED + 3, SEED + 4)],
        ),
        ("isotonic, exact class weights", [isotonic(weighted=True)]),
        ("Platt, exact class weights (v3 at weight 0.25)", [platt(weighted=True)]),
    ]
    print(
        "| calibration | other-eye weight | ECE | CEW faces called closed | open faces called "
        "closed | face-mask val eyes / faces called closed | synthetic winks reported |\n"
        "|---|---|---|---|---|---|---|"
    )
    for label, fits in variants:
        for w in (0.0, 0.125, 0.25, 0.375):
            ss, vv = TE.shared_by_face(s, face, w), TE.shared_by_face(vs, vface, w)
            rows = []
            for fit in fits:
                p_xf = crossfit(fit, ss, y, half)
                rates = TE.faces_called_closed(p_xf <= 0.5, y, face)
                calib = fit(ss, y)
                v_closed = calib(vv) <= 0.5
                v_faces = TE.faces_called_closed(v_closed, np.ones_like(vface), vface)[1][0]
                c = calib((1 - w) * wink_closed + w * wink_open) <= 0.5
                o = calib((1 - w) * wink_open + w * wink_closed) > 0.5
                rows.append(
                    (
                        ece(p_xf, y),
                        rates[0][0],
                        rates[1][0],
                        v_closed.mean(),
                        v_faces,
                        (c & o).mean(),
                    )
                )
            r = np.array(rows)
            cell = [
                f"{r[0, k]:.3f}"
                + (f" ({r[:, k].min():.3f}-{r[:, k].max():.3f})" if len(r) > 1 else "")
                for k in range(6)
            ]
            print(
                f"| {label} | {w} | {cell[0]} | {cell[1]} | {cell[2]} | {cell[3]} / {cell[4]} "
                f"| {cell[5]} |"
            )


# ---------------------------------------------------------------------------- Platt or isotonic


def smile_scores() -> tuple[F64, I64, npt.NDArray[np.str_]]:
    files, y, paths = TS.load()
    x, found = TS.crops(paths)
    calib = TS.splits(files)[1]
    calib = calib[found[calib]]
    head = Head.load(smile.CARD, network=True)
    z = smile.smile_features(head, x[calib])[:, 0].astype(np.float64)
    return z, y[calib], np.asarray(files)[calib]


def eyewear_scores(attr: str) -> tuple[F64, I64, npt.NDArray[np.str_]]:
    faces = TG.eyewear_faces(TG.DEFAULT_CACHE)
    va = TG.crops_of(faces, "validation", np.random.default_rng(SEED))
    kept = [f for f in faces if f.part == "validation" and TG.judgeable(f)]
    group = np.array([f"{f.source}:{f.group}" for f in kept])
    k = ("eyeglasses", "sunglasses").index(attr)
    head = Head.load(f"attr_{attr}", network=True)
    labelled = va.labels[:, k] >= 0
    x = TG.feature_rows(va, attr, head.network())[labelled]
    return head.raw_scores(x)[:, 0].astype(np.float64), va.labels[labelled, k], group[labelled]


def headwear_scores() -> tuple[F64, I64, npt.NDArray[np.str_]]:
    pool = TH.calibration_pool(TH.headwear_faces(TH.DEFAULT_CACHE))
    y = np.asarray([f.headwear for f in pool], np.int64)
    return TH.out_of_fold_scores(pool), y, np.array([f.image for f in pool])


def study_platt() -> None:
    """Per head, the calibrations compared. smile (and eyes, above) weight smiles and non-smiles
    equally by design (no prior preference): version 2 repeated the smiles by random draws.
    eyeglasses, sunglasses and headwear are calibrated at the data's own class balance."""
    equal: dict[str, Fit] = {
        "isotonic, smiles repeated by random draws (v2)": isotonic(draw=SEED + 1),
        "isotonic, exact class weights": isotonic(weighted=True),
        "Platt, exact class weights (v3)": platt(weighted=True),
    }
    own: dict[str, Fit] = {"isotonic": isotonic(), "Platt": platt()}
    print(
        "\n20 random half-splits by group: mean [min-max]; 'better' = splits where the method "
        "beats the first one of its head.\n\n| head | method | ECE | log loss | Brier | exactly "
        "0 or 1 | better: ECE / log loss / Brier |\n|---|---|---|---|---|---|---|"
    )
    sources: list[tuple[str, Callable[[], tuple[F64, I64, npt.NDArray[np.str_]]], dict[str, Fit]]]
    sources = [
        ("smile (SMILEsmileD calibration part)", smile_scores, equal),
        ("eyeglasses (validation part)", lambda: eyewear_scores("eyeglasses"), own),
        ("sunglasses (validation part)", lambda: eyewear_scores("sunglasses"), own),
        ("headwear (out-of-fold, train + validation photos)", headwear_scores, own),
    ]
    for head_name, get, methods in sources:
        s, y, groups = get()
        scores: dict[str, list[tuple[float, float, float, float]]] = {m: [] for m in methods}
        for split in range(20):
            half = halves(groups, y, split)
            for name, fit in methods.items():
                p = crossfit(fit, s, y, half)
                q = np.clip(p, 1e-3, 1 - 1e-3)
                log_loss = float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))
                brier = float(np.mean((p - y) ** 2))
                exact = float(np.mean((p == 0) | (p == 1)))
                scores[name].append((ece(p, y), log_loss, brier, exact))
        base = np.array(scores[next(iter(methods))])
        for k, name in enumerate(methods):
            r = np.array(scores[name])
            better = (r[:, :3] < base[:, :3]).sum(axis=0)
            cells = [
                f"{r[:, c].mean():.4f} [{r[:, c].min():.4f}-{r[:, c].max():.4f}]" for c in range(3)
            ]
            print(
                f"| {head_name} (n={len(y)}, {int(y.sum())} positive) | {name} | {cells[0]} | "
                f"{cells[1]} | {cells[2]} | {r[:, 3].mean():.1%} | "
                + ("-" if k == 0 else " / ".join(f"{b}/20" for b in better))
                + " |"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", nargs="?", choices=("eyes", "platt"), help="one study only")
    args = ap.parse_args()
    if args.part in (None, "eyes"):
        study_eyes()
    if args.part in (None, "platt"):
        study_platt()


if __name__ == "__main__":
    main()
