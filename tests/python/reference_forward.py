"""An independent Wide-ResNet forward pass in numpy, straight from a state dict: batch norm NOT folded, no ONNX.

It shares nothing with tools/wrn/graph.py but the key names, so it checks the folding and the graph wiring.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

EPS = 1e-5


def conv(x, w, stride, pad):
    """x [C, H, W], w [O, C, k, k] -> [O, H', W'] (cross-correlation, as torch's conv2d)."""
    k = w.shape[-1]
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(xp, (k, k), axis=(1, 2))[:, ::stride, ::stride]  # [C, H', W', k, k]
    return np.tensordot(w, win, axes=([1, 2, 3], [0, 3, 4]))


def bn(x, sd, p):
    g, b, m, v = (sd[f"{p}.{n}"].astype(np.float64) for n in ("weight", "bias", "running_mean", "running_var"))
    return (x - m[:, None, None]) / np.sqrt(v[:, None, None] + EPS) * g[:, None, None] + b[:, None, None]


def maxpool3x3s2(x):
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    return sliding_window_view(xp, (3, 3), axis=(1, 2))[:, ::2, ::2].max(axis=(-1, -2))


def forward(sd, x, blocks=(3, 4, 6, 3)):
    """x [1, 3, H, W] float -> logits [1000] (float64)."""
    relu = lambda t: np.maximum(t, 0)  # noqa: E731
    w = lambda k: sd[k].astype(np.float64)  # noqa: E731
    h = relu(bn(conv(x[0].astype(np.float64), w("conv1.weight"), 2, 3), sd, "bn1"))
    h = maxpool3x3s2(h)
    for stage, n in enumerate(blocks, start=1):
        for b in range(n):
            p = f"layer{stage}.{b}"
            stride = 2 if (b == 0 and stage > 1) else 1
            y = relu(bn(conv(h, w(f"{p}.conv1.weight"), 1, 0), sd, f"{p}.bn1"))
            y = relu(bn(conv(y, w(f"{p}.conv2.weight"), stride, 1), sd, f"{p}.bn2"))
            y = bn(conv(y, w(f"{p}.conv3.weight"), 1, 0), sd, f"{p}.bn3")
            if b == 0:
                h = bn(conv(h, w(f"{p}.downsample.0.weight"), stride, 0), sd, f"{p}.downsample.1")
            h = relu(y + h)
    feat = h.mean(axis=(1, 2))
    return w("fc.weight") @ feat + w("fc.bias")
