"""onnxruntime (CPU) on one model file: session creation, median inference after a warm-up, peak memory.

usage: ort_native.py MODEL.onnx INPUT.f32 THREADS RUNS LOGITS_OUT.f32    -> one JSON line on stdout
"""
import json
import resource
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort


def main(model, input_path, threads, runs, logits_out):
    x = np.fromfile(input_path, dtype="<f4").reshape(1, 3, 224, 224)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    t = time.perf_counter()
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - t) * 1e3
    name = session.get_inputs()[0].name
    session.run(None, {name: x})  # warm-up
    times = []
    for _ in range(int(runs)):
        t = time.perf_counter()
        (logits,) = session.run(None, {name: x})
        times.append((time.perf_counter() - t) * 1e3)
    logits.astype("<f4").tofile(logits_out)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"load_ms": load_ms, "median_ms": statistics.median(times), "runs_ms": times, "peak_mb": peak_mb}))


if __name__ == "__main__":
    main(*sys.argv[1:6])
