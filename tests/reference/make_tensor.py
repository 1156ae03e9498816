"""Reference network inputs: photos preprocessed with Pillow and torchvision's recipe (see pillow_preprocess.py),
normalised with the manifest's mean/std, as raw float32 NCHW, one [1, 3, crop, crop] tensor after the other.

usage: make_tensor.py MANIFEST.json OUT.f32 PHOTO...
"""
import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pillow_preprocess import reference  # noqa: E402


def tensor(path, m):
    img = reference(Image.open(path), m["resize"], m["crop"], m["interpolation"])
    x = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    x = (x - np.array(m["mean"], np.float32)) / np.array(m["std"], np.float32)
    return x.transpose(2, 0, 1)[None].astype("<f4")


def main(manifest, out, photos):
    m = json.load(open(manifest))
    np.concatenate([tensor(p, m) for p in photos]).tofile(out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
