#!/usr/bin/env python3
"""Render Flickr8k photos for drawing grounding boxes by eye.

  view.py IMAGE.jpg [IMAGE.jpg ...] [--boxes FILE.tsv] [--out DIR]

Each photo is upscaled 3x (224 -> 672 px) with a labelled grid every 0.1 of the
width/height, so a box can be read off in normalised coordinates. With --boxes, every
row of the TSV (image, caption, word, x0, y0, x1, y1) for that photo is drawn on it with
its word, to check a box after writing it. Prints the captions of each photo.
"""
import argparse, os, sys
from PIL import Image, ImageDraw

DATA = os.environ.get("FLICKR8K", os.path.join(os.path.dirname(__file__), "../../../shared/data/flickr8k"))
SCALE = 3

def captions():
    out = {}
    with open(os.path.join(DATA, "Flickr8k.token.txt"), encoding="utf-8") as f:
        for line in f:
            key, cap = line.rstrip("\n").split("\t", 1)
            out.setdefault(key.split("#")[0], []).append(cap)
    return out

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("images", nargs="+")
    ap.add_argument("--boxes")
    ap.add_argument("--out", default="/tmp/grounding/view")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rows = []
    if a.boxes:
        with open(a.boxes, encoding="utf-8") as f:
            for line in f:
                if line.startswith("#") or line.startswith("image\t") or not line.strip():
                    continue
                p = line.rstrip("\n").split("\t")
                rows.append((p[0], p[2], [float(v) for v in p[3:7]]))
    caps = captions()
    colours = ["red", "lime", "cyan", "magenta", "yellow", "orange"]
    for name in a.images:
        im = Image.open(os.path.join(DATA, "images", name)).convert("RGB")
        w, h = im.size
        im = im.resize((w * SCALE, h * SCALE), Image.BICUBIC)
        W, H = im.size
        d = ImageDraw.Draw(im)
        for i in range(11):
            x, y = round(i / 10 * (W - 1)), round(i / 10 * (H - 1))
            c = (255, 255, 255) if i % 5 else (255, 255, 0)
            d.line([(x, 0), (x, H)], fill=c, width=1)
            d.line([(0, y), (W, y)], fill=c, width=1)
            if 0 < i < 10:
                d.text((x + 2, 2), f"{i/10:.1f}", fill=(255, 255, 0))
                d.text((2, y + 2), f"{i/10:.1f}", fill=(255, 255, 0))
        k = 0
        for img, word, (x0, y0, x1, y1) in rows:
            if img != name:
                continue
            c = colours[k % len(colours)]; k += 1
            d.rectangle([x0 * W, y0 * H, x1 * W, y1 * H], outline=c, width=3)
            d.text((x0 * W + 4, y0 * H + 12), word, fill=c)
        path = os.path.join(a.out, name.replace(".jpg", ".png"))
        im.save(path)
        print(path)
        for c in caps.get(name, []):
            print("   ", c)

if __name__ == "__main__":
    main()
