#!/usr/bin/env python3
"""Puts a few real photos in www/samples/, taken from scikit-image's wheel (its bundled data images).

Licences, as skimage/data/_fetchers.py states them: chelsea.png (a tabby cat), CC0 by the photographer Stefan van der
Walt; coffee.png (a cup of coffee), CC0 by the photographer Rachel Michetti; astronaut.png (Eileen Collins), NASA,
public domain; rocket.jpg (DSCOVR on Falcon 9), SpaceX, released into the public domain.
"""
import os
import sys

from registry_wheel import read_members

SKIMAGE = "scikit-image==0.26.0"
PHOTOS = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"]
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "www", "samples")


def main():
    if all(os.path.exists(os.path.join(OUT, p)) for p in PHOTOS):
        return
    os.makedirs(OUT, exist_ok=True)
    files = read_members(SKIMAGE, [f"skimage/data/{p}" for p in PHOTOS])
    for p in PHOTOS:
        with open(os.path.join(OUT, p), "wb") as f:
            f.write(files[f"skimage/data/{p}"])
    print(f"fetch_samples: {len(PHOTOS)} photos from {SKIMAGE} in {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
