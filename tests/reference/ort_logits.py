"""Reference inference: onnxruntime on a model file and raw f32 NCHW inputs.

usage: ort_logits.py MODEL.onnx INPUT.f32 [INPUT.f32 ...]   (writes INPUT.logits.f32 beside each input)
"""
import sys

import numpy as np
import onnxruntime as ort


def main(model: str, inputs: list[str]) -> None:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    meta = session.get_inputs()[0]
    for path in inputs:
        x = np.fromfile(path, dtype="<f4").reshape(meta.shape)
        (logits,) = session.run(None, {meta.name: x})
        logits.astype("<f4").tofile(path[: -len(".f32")] + ".logits.f32")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
