"""Contact sheets for labelling faces by eye (eyes_open / smile / mouth_open).

Reads train/labels/facemask_headwear_eyewear.csv (637 faces of the CC0 facemask_kaggle_voc set),
crops each labelled box grown 1.6x around its centre (square, black outside the photo),
resizes it to a tile, writes the row number (0-based data row of that CSV) and the set's mask
class (M = with_mask, N = without_mask, I = mask_weared_incorrect) above each tile, and tiles
them into numbered PNG sheets.  Masked faces (eyes only to judge) and the rest are put on
separate sheets.  Larger crops of chosen rows on one sheet: --row N [N ...] --size 300.

    python train/labels/make_sheets.py [--out /tmp/f-labels/sheets] [--row N [N ...] --size 300]
"""
import argparse
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "facemask_kaggle_voc"
if not DATA.exists():
    DATA = Path("/work/shared/data/facemask_kaggle_voc")
TAG = {"with_mask": "M", "without_mask": "N", "mask_weared_incorrect": "I"}


def crop(row, size, grow=1.6):
    im = Image.open(DATA / "images" / row.image).convert("RGB")
    cx, cy = (row.xmin + row.xmax) / 2, (row.ymin + row.ymax) / 2
    half = grow * max(row.xmax - row.xmin, row.ymax - row.ymin) / 2
    box = tuple(round(v) for v in (cx - half, cy - half, cx + half, cy + half))
    return im.crop(box).resize((size, size), Image.LANCZOS)


def rows():
    lab = pd.read_csv(ROOT / "train" / "labels" / "facemask_headwear_eyewear.csv")
    ann = pd.read_csv(DATA / "annotations.csv")[["image", "xmin", "ymin", "xmax", "ymax", "label"]]
    m = lab.merge(ann, on=["image", "xmin", "ymin", "xmax", "ymax"], how="left")
    assert len(m) == len(lab)
    return m


def sheet(df, path, cols, nrows, size):
    strip = 16
    out = Image.new("RGB", (cols * size, nrows * (size + strip)), (255, 255, 255))
    d = ImageDraw.Draw(out)
    for k, (i, r) in enumerate(df.iterrows()):
        x, y = (k % cols) * size, (k // cols) * (size + strip)
        out.paste(crop(r, size), (x, y + strip))
        d.text((x + 3, y + 2), f"#{i} {TAG.get(r.label, '?')} {r.xmax - r.xmin}px", fill=(0, 0, 0))
        d.rectangle([x, y, x + size - 1, y + size + strip - 1], outline=(0, 0, 0))
    out.save(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/f-labels/sheets")
    ap.add_argument("--row", type=int, nargs="*")
    ap.add_argument("--size", type=int, default=400)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    m = rows()
    if a.row:
        cols = min(len(a.row), max(1, 1000 // a.size))
        sheet(m.loc[a.row], out / f"rows_{'_'.join(map(str, a.row))}.png", cols,
              -(-len(a.row) // cols), a.size)
        return
    groups = [("masked", m[m.label == "with_mask"], 6, 5, 160),
              ("bare", m[m.label != "with_mask"], 5, 4, 180)]
    for name, df, cols, nrows, size in groups:
        n = cols * nrows
        for s in range(0, len(df), n):
            sheet(df.iloc[s:s + n], out / f"{name}_{s // n:02d}.png", cols, nrows, size)
        print(name, len(df), "faces,", -(-len(df) // n), "sheets")


if __name__ == "__main__":
    main()
