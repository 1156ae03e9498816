"""Model preparation for wrn-wasm: state dict (timm/torchvision layout) -> ONNX -> weight-only int8 + manifest."""
