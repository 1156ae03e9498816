#!/usr/bin/env python3
"""Builds the model wrn-wasm embeds: state dict -> BN-folded ONNX -> weight-only int8, plus manifest.json.

  tools/build_model.py                          # best published weights if online, else synthetic
  tools/build_model.py --weights synthetic      # seeded synthetic weights (what CI and offline machines use)
  tools/build_model.py --weights racm_in1k      # timm's wide_resnet50_2.racm_in1k (needs the network)
  tools/build_model.py --weights my.safetensors # a local state dict in timm/torchvision layout
  tools/build_model.py --fp32                   # also write the fp32 model (for parity tests and benchmarks)
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import onnx  # noqa: E402

from wrn import arch as archs, graph, manifest, weights  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="wrn50_2", choices=sorted(archs.ARCHS))
    ap.add_argument("--weights", default="auto",
                    help="auto | synthetic | a published tag (racm_in1k, tv2_in1k, tv_in1k) | FILE.safetensors")
    ap.add_argument("--seed", type=int, default=0, help="seed of synthetic weights")
    ap.add_argument("--fp32", action="store_true", help="also write the fp32 model")
    ap.add_argument("--out", default=os.path.join(ROOT, "model"), help="output folder (default: model/)")
    ap.add_argument("--cache", default=None, help="where downloaded/synthetic state dicts go (default: OUT/cache)")
    args = ap.parse_args(argv)

    arch = archs.ARCHS[args.arch]
    os.makedirs(args.out, exist_ok=True)
    log = lambda msg: print(f"build_model: {msg}", file=sys.stderr)  # noqa: E731
    try:
        w = weights.resolve(arch, args.weights, args.cache or os.path.join(args.out, "cache"), args.seed, log)
        sd = weights.load(arch, w)
    except (weights.OfflineError, ValueError, FileNotFoundError) as e:
        log(f"error: {e}")
        if isinstance(e, weights.OfflineError):
            log("this machine is offline: use --weights synthetic, or a local FILE.safetensors")
        return 2
    log(f"{arch.timm_name} with weights {w.source}{' (SYNTHETIC: predictions are meaningless)' if w.synthetic else ''}")

    tag = "synthetic" if w.synthetic else w.source.split(".")[-1].removesuffix(".safetensors").replace(":", "-")
    meta = {"arch": arch.name, "weights": w.source, "weights_sha256": w.sha256, "synthetic": w.synthetic}
    fp32 = None
    if args.fp32:
        name = f"{arch.name}-{tag}-fp32.onnx"
        fp32 = (name, _save(graph.build(arch, sd, False, meta), os.path.join(args.out, name), log))
    name = f"{arch.name}-{tag}-int8.onnx"
    sha = _save(graph.build(arch, sd, True, meta), os.path.join(args.out, name), log)
    m = manifest.make(arch, w, name, sha, fp32)
    manifest.write(m, os.path.join(args.out, "manifest.json"))
    log(f"wrote {os.path.join(args.out, 'manifest.json')}")
    return 0


def _save(model: onnx.ModelProto, path: str, log) -> str:
    t = time.time()
    tmp = path + ".part"
    onnx.save(model, tmp)
    os.replace(tmp, path)
    sha = weights.sha256_file(path)
    log(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB, {time.time() - t:.1f} s)")
    return sha


if __name__ == "__main__":
    sys.exit(main())
