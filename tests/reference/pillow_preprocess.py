"""Reference preprocessing: what torchvision's Resize(short side) + CenterCrop do to a PIL image, with Pillow.

usage: pillow_preprocess.py CASES_DIR
Each CASES_DIR/<name>.json is {"width", "height", "resize", "crop", "interpolation"} beside <name>.rgba (raw RGBA8);
writes <name>.rgb: the crop x crop RGB8 pixels Pillow produces.
"""
import glob
import json
import sys

from PIL import Image

FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def reference(img: Image.Image, resize: int, crop: int, interpolation: str) -> Image.Image:
    img = img.convert("RGB")
    w, h = img.size
    # torchvision.transforms.functional._compute_resized_output_size with an int size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = resize, int(resize * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    img = img.resize((new_w, new_h), FILTERS[interpolation])
    # torchvision.transforms.functional.center_crop
    top = int(round((new_h - crop) / 2.0))
    left = int(round((new_w - crop) / 2.0))
    return img.crop((left, top, left + crop, top + crop))


def main(cases_dir: str) -> None:
    for spec_path in sorted(glob.glob(f"{cases_dir}/*.json")):
        spec = json.load(open(spec_path))
        base = spec_path[: -len(".json")]
        raw = open(base + ".rgba", "rb").read()
        img = Image.frombytes("RGBA", (spec["width"], spec["height"]), raw)
        out = reference(img, spec["resize"], spec["crop"], spec["interpolation"])
        open(base + ".rgb", "wb").write(out.tobytes())


if __name__ == "__main__":
    main(sys.argv[1])
