"""tools/build_model.py end to end: every weight source takes the same path, and the ONNX it writes computes what
an independent numpy forward pass of the state dict computes."""
import functools
import http.server
import json
import os
import socket
import threading

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

import build_model
from reference_forward import forward
from wrn import arch, weights

A = arch.ARCHS["wrn50_2"]


def run_ort(path, x):
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return s.run(None, {"input": x})[0][0]


@pytest.fixture(scope="module")
def local_file(tmp_path_factory):
    """A state dict of timm's layout made here, without the optional BN counters (as some published files are)."""
    d = tmp_path_factory.mktemp("local")
    sd = {k: v for k, v in weights.synthetic_state_dict(A, seed=7).items() if not k.endswith("num_batches_tracked")}
    path = str(d / "my-wrn.safetensors")
    save_file(sd, path)
    return path, sd


@pytest.fixture(scope="module")
def built_from_file(local_file, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("built"))
    assert build_model.main(["--weights", local_file[0], "--fp32", "--out", out]) == 0
    return out, json.load(open(os.path.join(out, "manifest.json")))


def test_manifest_describes_the_build(local_file, built_from_file):
    out, m = built_from_file
    assert m["weights"] == {"source": "file:my-wrn.safetensors", "sha256": weights.sha256_file(local_file[0]),
                            "synthetic": False}
    assert m["params"] == 68_883_240 and m["arch"] == "wrn50_2"
    assert m["model_sha256"] == weights.sha256_file(os.path.join(out, m["model_file"]))
    assert m["fp32_model_sha256"] == weights.sha256_file(os.path.join(out, m["fp32_model_file"]))
    assert (m["resize"], m["crop"], m["interpolation"]) == (256, 224, "bicubic")
    assert m["mean"] == [0.485, 0.456, 0.406] and m["std"] == [0.229, 0.224, 0.225]
    assert m["input"] == {"name": "input", "shape": [1, 3, 224, 224]}
    import onnx
    model = onnx.load(os.path.join(out, m["model_file"]), load_external_data=False)
    assert model.ir_version == 8, "onnxruntime-web (IR <= 13) must load the same file"
    size_mb = os.path.getsize(os.path.join(out, m["model_file"])) / 1e6
    assert 68 < size_mb < 71, size_mb  # int8 weights: ~1 byte a parameter


def test_fp32_onnx_equals_numpy_forward_of_the_state_dict(local_file, built_from_file):
    out, m = built_from_file
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    want = forward(local_file[1], x)
    got = run_ort(os.path.join(out, m["fp32_model_file"]), x)
    spread = want.max() - want.min()
    assert spread > 0.5
    assert np.abs(got - want).max() < 1e-4 * max(1.0, np.abs(want).max()), np.abs(got - want).max()


def test_int8_model_stays_close_to_fp32(built_from_file):
    out, m = built_from_file
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    fp32 = run_ort(os.path.join(out, m["fp32_model_file"]), x)
    int8 = run_ort(os.path.join(out, m["model_file"]), x)
    rel = np.abs(int8 - fp32).max() / (fp32.max() - fp32.min())
    assert 0 < rel < 0.05, rel  # quantised, so not identical, but close
    assert np.corrcoef(int8, fp32)[0, 1] > 0.99


class _Hub:
    """A stand-in for the weights hub on 127.0.0.1, serving files laid out as timm's repositories are."""

    def __init__(self, root):
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
        handler.log_message = lambda *a: None
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_published_weights_are_downloaded_checked_and_recorded(local_file, tmp_path, monkeypatch):
    repo = tmp_path / "hub" / "timm" / "wide_resnet50_2.tv_in1k" / "resolve" / "main"
    repo.mkdir(parents=True)
    os.link(local_file[0], repo / "model.safetensors")
    hub = _Hub(str(tmp_path / "hub"))
    monkeypatch.setattr(weights, "HUB", hub.url)
    try:
        assert build_model.main(["--weights", "tv_in1k", "--out", str(tmp_path / "out")]) == 0
    finally:
        hub.close()
    m = json.load(open(tmp_path / "out" / "manifest.json"))
    assert m["weights"]["source"] == "timm/wide_resnet50_2.tv_in1k"
    assert m["weights"]["url"] == f"{hub.url}/timm/wide_resnet50_2.tv_in1k/resolve/main/model.safetensors"
    assert m["weights"]["sha256"] == weights.sha256_file(local_file[0])
    assert m["weights"]["published_top1"] == 78.48 and m["weights"]["synthetic"] is False
    assert (m["resize"], m["crop"], m["interpolation"]) == (256, 224, "bilinear")


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_is_a_clear_error_and_auto_falls_back_to_synthetic(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(weights, "HUB", f"http://127.0.0.1:{_closed_port()}")
    assert build_model.main(["--weights", "racm_in1k", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "could not download" in err and "--weights synthetic" in err
    assert build_model.main(["--out", str(tmp_path / "b")]) == 0
    assert "offline" in capsys.readouterr().err
    m = json.load(open(tmp_path / "b" / "manifest.json"))
    assert m["weights"]["source"] == "synthetic" and m["weights"]["synthetic"] is True


def test_a_file_of_the_wrong_layout_is_refused(tmp_path, capsys):
    sd = weights.synthetic_state_dict(A, seed=0)
    del sd["layer3.0.conv2.weight"]
    path = str(tmp_path / "bad.safetensors")
    save_file(sd, path)
    assert build_model.main(["--weights", path, "--out", str(tmp_path / "out")]) == 2
    assert "layer3.0.conv2.weight" in capsys.readouterr().err
