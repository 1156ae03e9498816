"""Writes a one-frame Y4M video of a photo, for Chromium's fake camera (--use-file-for-fake-video-capture).
Chromium loops it, so every frame the page grabs is the same picture.

usage: make_y4m.py IMAGE OUT.y4m [WIDTH HEIGHT]
"""
import sys

from PIL import Image


def main(src: str, out: str, width: int = 640, height: int = 480) -> None:
    img = Image.open(src).convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
    y, cb, cr = img.convert("YCbCr").split()
    half = (width // 2, height // 2)
    with open(out, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        f.write(b"FRAME\n")
        f.write(y.tobytes())
        f.write(cb.resize(half, Image.Resampling.BOX).tobytes())
        f.write(cr.resize(half, Image.Resampling.BOX).tobytes())


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], args[1], *map(int, args[2:4]))
