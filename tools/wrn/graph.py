"""The ONNX graph of a Wide-ResNet: batch norm folded into the convolutions, fp32 or weight-only int8.

Weight-only int8: each conv/fc weight is stored as per-output-channel symmetric int8 with a DequantizeLinear in front;
activations stay f32. That is 4x smaller than fp32 and, folded back at load time, exactly as fast.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .arch import Arch, blocks, stem

OPSET = 17
# The IR version that goes with opset 17. onnx's helper would stamp its own newest (14 with onnx 1.23), which
# onnxruntime-web 1.30 refuses ("max supported IR version: 13"); the model needs nothing newer.
IR_VERSION = 8
BN_EPS = 1e-5  # torch's BatchNorm2d default, used by torchvision and timm ResNets
INPUT = "input"
OUTPUT = "logits"


def fold_bn(sd: dict, conv: str, bn: str):
    """Conv weight and bias with the batch norm that follows folded in (in f64, rounded once to f32)."""
    w = sd[f"{conv}.weight"].astype(np.float64)
    gamma = sd[f"{bn}.weight"].astype(np.float64)
    beta = sd[f"{bn}.bias"].astype(np.float64)
    mean = sd[f"{bn}.running_mean"].astype(np.float64)
    var = sd[f"{bn}.running_var"].astype(np.float64)
    k = gamma / np.sqrt(var + BN_EPS)
    return (w * k[:, None, None, None]).astype(np.float32), (beta - mean * k).astype(np.float32)


def quantize_per_channel(w: np.ndarray):
    """Symmetric int8 per output channel (axis 0): w ~= q * scale, q in [-127, 127]."""
    flat = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    scale = np.where(flat > 0, flat / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.round(w / scale.reshape((-1,) + (1,) * (w.ndim - 1))), -127, 127).astype(np.int8)
    return q, scale


class _Builder:
    def __init__(self, quantize: bool):
        self.quantize = quantize
        self.nodes = []
        self.inits = []

    def weight(self, name: str, w: np.ndarray) -> str:
        if not self.quantize:
            self.inits.append(numpy_helper.from_array(w, name))
            return name
        q, scale = quantize_per_channel(w)
        self.inits += [
            numpy_helper.from_array(q, f"{name}_q"),
            numpy_helper.from_array(scale, f"{name}_scale"),
            numpy_helper.from_array(np.zeros(w.shape[0], np.int8), f"{name}_zero"),
        ]
        self.nodes.append(helper.make_node(
            "DequantizeLinear", [f"{name}_q", f"{name}_scale", f"{name}_zero"], [name], name=f"{name}_dq", axis=0))
        return name

    def conv(self, sd, spec, x: str, relu: bool) -> str:
        w, b = fold_bn(sd, spec.conv, spec.bn)
        wn = self.weight(f"{spec.conv}.weight", w)
        self.inits.append(numpy_helper.from_array(b, f"{spec.conv}.bias"))
        y = f"{spec.conv}.out"
        p = spec.pad
        self.nodes.append(helper.make_node(
            "Conv", [x, wn, f"{spec.conv}.bias"], [y], name=spec.conv,
            kernel_shape=[spec.kernel] * 2, strides=[spec.stride] * 2, pads=[p, p, p, p]))
        return self.relu(y) if relu else y

    def relu(self, x: str) -> str:
        self.nodes.append(helper.make_node("Relu", [x], [x + ".relu"], name=x + ".relu"))
        return x + ".relu"


def build(arch: Arch, sd: dict, quantize: bool, metadata: dict) -> onnx.ModelProto:
    g = _Builder(quantize)
    x = g.conv(sd, stem(arch), INPUT, relu=True)
    g.nodes.append(helper.make_node("MaxPool", [x], ["maxpool"], name="maxpool",
                                    kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    x = "maxpool"
    for blk in blocks(arch):
        shortcut = g.conv(sd, blk.downsample, x, relu=False) if blk.downsample else x
        y = x
        for i, spec in enumerate(blk.convs):
            y = g.conv(sd, spec, y, relu=i < 2)
        g.nodes.append(helper.make_node("Add", [y, shortcut], [f"{blk.prefix}.add"], name=f"{blk.prefix}.add"))
        x = g.relu(f"{blk.prefix}.add")
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
    g.nodes.append(helper.make_node("Flatten", ["pool"], ["features"], name="flatten", axis=1))
    fc_w = g.weight("fc.weight", sd["fc.weight"].astype(np.float32))
    g.inits.append(numpy_helper.from_array(sd["fc.bias"].astype(np.float32), "fc.bias"))
    g.nodes.append(helper.make_node("Gemm", ["features", fc_w, "fc.bias"], [OUTPUT], name="fc", transB=1))

    size = arch.input_size
    graph = helper.make_graph(
        g.nodes, f"{arch.name}",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [1, arch.num_classes])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="wrn-wasm tools",
                              ir_version=IR_VERSION)
    # value_info is deliberately left empty: tract fails to unify shapes it carries for quantized graphs.
    onnx.helper.set_model_props(model, {k: str(v) for k, v in metadata.items()})
    onnx.checker.check_model(model, full_check=False)
    return model
