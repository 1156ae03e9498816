"""Where a state dict comes from: published timm weights, a local safetensors file, or seeded synthetic weights.

Every source ends as a safetensors file on disk that is checked against the architecture and hashed, so real and
synthetic weights take exactly the same path from there on.
"""
import hashlib
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass

import numpy as np
from safetensors.numpy import load_file, save_file

from .arch import BN_OPTIONAL, Arch, all_convs, state_dict_spec

HUB = "https://huggingface.co"
DOWNLOAD_TIMEOUT_S = 10


@dataclass(frozen=True)
class Recipe:
    """How the weights were evaluated: the preprocessing a user must apply to get the published accuracy."""
    resize: int
    crop: int
    interpolation: str  # Pillow filter: "bilinear" or "bicubic"
    mean: tuple = (0.485, 0.456, 0.406)
    std: tuple = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Published:
    tag: str
    recipe: Recipe
    top1: float
    top5: float | None


# timm's published weights per architecture, with the evaluation recipe and the accuracy reported for it.
PUBLISHED = {
    "wrn50_2": {
        "racm_in1k": Published("racm_in1k", Recipe(256, 224, "bicubic"), 81.45, 95.53),
        "tv2_in1k": Published("tv2_in1k", Recipe(232, 224, "bilinear"), 81.60, 95.76),
        "tv_in1k": Published("tv_in1k", Recipe(256, 224, "bilinear"), 78.48, 94.08),
    },
    "wrn101_2": {
        "tv_in1k": Published("tv_in1k", Recipe(256, 224, "bilinear"), 78.84, None),
    },
}
# Which published weights "auto" tries first: the most accurate ones.
BEST = {"wrn50_2": "racm_in1k", "wrn101_2": "tv_in1k"}
# Synthetic weights use the recipe of the default real weights so that they exercise the same preprocessing.
SYNTHETIC_RECIPE = Recipe(256, 224, "bicubic")


class OfflineError(RuntimeError):
    pass


@dataclass(frozen=True)
class Weights:
    source: str             # "synthetic", "timm/<name>.<tag>" or "file:<name>"
    path: str               # the safetensors file
    sha256: str
    synthetic: bool
    recipe: Recipe
    seed: int | None = None
    url: str | None = None
    published: Published | None = None


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hub_url(arch: Arch, tag: str) -> str:
    return f"{HUB}/timm/{arch.timm_name}.{tag}/resolve/main/model.safetensors"


def download(url: str, dest: str, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    tmp = dest + ".part"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise OfflineError(f"could not download {url}: {e}") from e
    os.replace(tmp, dest)


def synthetic_state_dict(arch: Arch, seed: int) -> dict:
    """Seeded random weights with exactly the keys, shapes and dtypes of a torch state dict.

    Scales are chosen so that activations stay of order one through the residual stages and the logits spread over a
    few units: the model is numerically like a trained one, and meaningless.
    """
    rng = np.random.default_rng(seed)
    sd = {}
    for c in all_convs(arch):
        fan_in = c.in_ch * c.kernel * c.kernel
        sd[f"{c.conv}.weight"] = (rng.standard_normal((c.out_ch, c.in_ch, c.kernel, c.kernel)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        last_in_block = c.bn.endswith("bn3") or c.bn.endswith("downsample.1")
        gain = 0.25 if last_in_block else 1.0
        sd[f"{c.bn}.weight"] = (gain * rng.uniform(0.5, 1.0, c.out_ch)).astype(np.float32)
        sd[f"{c.bn}.bias"] = (rng.standard_normal(c.out_ch) * 0.05).astype(np.float32)
        sd[f"{c.bn}.running_mean"] = (rng.standard_normal(c.out_ch) * 0.1).astype(np.float32)
        sd[f"{c.bn}.running_var"] = rng.uniform(0.5, 1.5, c.out_ch).astype(np.float32)
        sd[f"{c.bn}.{BN_OPTIONAL}"] = np.array(0, dtype=np.int64)
    n_feat = state_dict_spec(arch)["fc.weight"][1]
    sd["fc.weight"] = (rng.standard_normal((arch.num_classes, n_feat)) * (8.0 / np.sqrt(n_feat))).astype(np.float32)
    sd["fc.bias"] = (rng.standard_normal(arch.num_classes) * 0.1).astype(np.float32)
    return sd


def check_state_dict(arch: Arch, sd: dict) -> None:
    """Raises ValueError unless sd has exactly the architecture's keys and shapes (the optional counters aside)."""
    spec = state_dict_spec(arch)
    missing = [k for k in spec if k not in sd and not k.endswith(BN_OPTIONAL)]
    unexpected = [k for k in sd if k not in spec]
    wrong = [f"{k}: {tuple(sd[k].shape)} != {spec[k]}" for k in spec if k in sd and tuple(sd[k].shape) != spec[k]]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    if wrong:
        problems.append(f"wrong shapes {wrong[:5]}")
    if problems:
        raise ValueError(f"not a {arch.timm_name} state dict: " + "; ".join(problems))


def resolve(arch: Arch, choice: str, cache_dir: str, seed: int = 0, log=print) -> Weights:
    """Turns the user's --weights choice into a checked safetensors file."""
    os.makedirs(cache_dir, exist_ok=True)
    published = PUBLISHED[arch.name]
    if choice == "auto":
        try:
            return resolve(arch, BEST[arch.name], cache_dir, seed, log)
        except OfflineError as e:
            log(f"offline ({e}); using synthetic weights: predictions will be meaningless")
            return resolve(arch, "synthetic", cache_dir, seed, log)
    if choice == "synthetic":
        path = os.path.join(cache_dir, f"{arch.name}-synthetic-seed{seed}.safetensors")
        if not os.path.exists(path):
            save_file(synthetic_state_dict(arch, seed), path)
        return Weights("synthetic", path, sha256_file(path), True, SYNTHETIC_RECIPE, seed=seed)
    if choice in published:
        pub = published[choice]
        url = hub_url(arch, choice)
        path = os.path.join(cache_dir, f"{arch.timm_name}.{choice}.safetensors")
        if not os.path.exists(path):
            log(f"downloading {url}")
            download(url, path)
        return Weights(f"timm/{arch.timm_name}.{choice}", path, sha256_file(path), False, pub.recipe, url=url, published=pub)
    if choice.endswith(".safetensors"):
        if not os.path.exists(choice):
            raise FileNotFoundError(f"no such weights file: {choice}")
        # A local file is taken to be evaluated like the default published weights of its architecture.
        recipe = published[BEST[arch.name]].recipe
        return Weights(f"file:{os.path.basename(choice)}", choice, sha256_file(choice), False, recipe)
    choices = ", ".join(["auto", "synthetic", *published, "FILE.safetensors"])
    raise ValueError(f"unknown weights {choice!r} for {arch.name}: choose one of {choices}")


def load(arch: Arch, weights: Weights) -> dict:
    sd = load_file(weights.path)
    check_state_dict(arch, sd)
    return sd
