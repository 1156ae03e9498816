"""manifest.json: the model's recipe, the one place every constant of the model lives (read by Rust, JS and tools)."""
import json
from dataclasses import asdict

from .arch import Arch, macs, param_count
from .graph import INPUT, OUTPUT
from .weights import Weights

QUANTIZATION = "weight-only int8: per-output-channel symmetric int8 weights + DequantizeLinear, f32 activations"


def make(arch: Arch, weights: Weights, model_file: str, model_sha256: str, fp32: tuple | None) -> dict:
    size = arch.input_size
    w = {"source": weights.source, "sha256": weights.sha256, "synthetic": weights.synthetic}
    if weights.seed is not None:
        w["seed"] = weights.seed
    if weights.url:
        w["url"] = weights.url
    if weights.published:
        w["published_top1"] = weights.published.top1
        w["published_top5"] = weights.published.top5
    m = {
        "format": 1,
        "arch": arch.name,
        "arch_timm": arch.timm_name,
        "weights": w,
        "params": param_count(arch),
        "macs": macs(arch),
        "num_classes": arch.num_classes,
        "labels": "imagenet-1k",
        "model_file": model_file,
        "model_sha256": model_sha256,
        "quantization": QUANTIZATION,
        "input": {"name": INPUT, "shape": [1, 3, size, size]},
        "output": {"name": OUTPUT, "shape": [1, arch.num_classes]},
        **{k: v for k, v in asdict(weights.recipe).items()},
    }
    m["mean"], m["std"] = list(m["mean"]), list(m["std"])
    if fp32:
        m["fp32_model_file"], m["fp32_model_sha256"] = fp32
    return m


def write(manifest: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
