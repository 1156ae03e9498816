"""Writes OUT/upright.png and OUT/orientation_N.png (N = 3, 6, 8): the same picture stored rotated, with the EXIF
Orientation tag that tells a viewer how to turn it back. Checks with Pillow's exif_transpose that each displays as
the upright one.

usage: make_oriented.py IMAGE OUT_DIR
"""
import sys

from PIL import Image, ImageOps

# How the stored pixels relate to the upright picture for each EXIF orientation (Pillow's transpose operations).
STORED = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def main(src: str, out: str) -> None:
    upright = Image.open(src).convert("RGB")
    upright.save(f"{out}/upright.png")
    for orientation, op in STORED.items():
        stored = upright.transpose(op)
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = f"{out}/orientation_{orientation}.png"
        stored.save(path, exif=exif)
        shown = ImageOps.exif_transpose(Image.open(path))
        assert shown.tobytes() == upright.tobytes(), f"orientation {orientation} does not display upright"


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
