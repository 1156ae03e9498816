"""The peer's own best int8 models: onnxruntime's static quantizer on the fp32 model, calibrated on preprocessed
sample photos. Writes QDQ (u8 activations, s8 per-channel weights) and QOperator (QLinearConv, ...) files.

usage: quantize_ort.py FP32.onnx CALIBRATION.f32 OUT_DIR     (CALIBRATION: N x [1,3,224,224] float32, raw)
"""
import os
import sys

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static


class Reader(CalibrationDataReader):
    def __init__(self, path):
        x = np.fromfile(path, dtype="<f4").reshape(-1, 1, 3, 224, 224)
        self.batches = iter([{"input": b} for b in x])

    def get_next(self):
        return next(self.batches, None)


def main(fp32, calibration, out):
    os.makedirs(out, exist_ok=True)
    for fmt, name in [(QuantFormat.QDQ, "qdq-u8"), (QuantFormat.QOperator, "qop-u8")]:
        path = os.path.join(out, f"ort-{name}.onnx")
        if os.path.exists(path):
            continue
        quantize_static(fp32, path + ".part", Reader(calibration), quant_format=fmt, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        os.replace(path + ".part", path)
        print(f"quantize_ort: wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:4])
