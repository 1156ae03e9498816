"""Decodes images with Pillow to the exact pixels other tests feed to every implementation.

usage: decode_rgba.py OUT_DIR IMAGE...
For each IMAGE writes OUT_DIR/<stem>.rgba (raw RGBA8), <stem>.json ({"width", "height"}) and <stem>.png (the same
pixels, lossless, for tools that take files).
"""
import json
import os
import sys

from PIL import Image


def main(out: str, images: list[str]) -> None:
    for path in images:
        stem = os.path.splitext(os.path.basename(path))[0]
        img = Image.open(path).convert("RGBA")
        open(os.path.join(out, stem + ".rgba"), "wb").write(img.tobytes())
        json.dump({"width": img.width, "height": img.height}, open(os.path.join(out, stem + ".json"), "w"))
        img.save(os.path.join(out, stem + ".png"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
