"""The architecture and synthetic weights have exactly the layout of torchvision's/timm's Wide-ResNets."""
import numpy as np
import pytest

from wrn import arch, weights


@pytest.mark.parametrize("name,published", [("wrn50_2", 68_883_240), ("wrn101_2", 126_886_696)])
def test_parameter_counts_are_the_published_ones(name, published):
    assert arch.param_count(arch.ARCHS[name]) == published


@pytest.mark.parametrize("name,gmacs", [("wrn50_2", 11.4), ("wrn101_2", 22.8)])
def test_macs_are_the_published_ones(name, gmacs):
    assert arch.macs(arch.ARCHS[name]) / 1e9 == pytest.approx(gmacs, abs=0.05)


def test_spec_spot_checks_against_torchvision_definition():
    spec = arch.state_dict_spec(arch.ARCHS["wrn50_2"])
    # torchvision.models.wide_resnet50_2: Bottleneck(width_per_group=128), stride on the 3x3 conv.
    assert spec["conv1.weight"] == (64, 3, 7, 7)
    assert spec["layer1.0.conv1.weight"] == (128, 64, 1, 1)
    assert spec["layer1.0.conv3.weight"] == (256, 128, 1, 1)
    assert spec["layer1.0.downsample.0.weight"] == (256, 64, 1, 1)
    assert spec["layer2.0.conv2.weight"] == (256, 256, 3, 3)
    assert spec["layer3.5.conv2.weight"] == (512, 512, 3, 3)
    assert spec["layer4.0.downsample.0.weight"] == (2048, 1024, 1, 1)
    assert spec["layer4.2.bn3.running_var"] == (2048,)
    assert spec["layer4.2.bn3.num_batches_tracked"] == ()
    assert spec["fc.weight"] == (1000, 2048)
    assert "layer4.3.conv1.weight" not in spec and "layer3.5.conv1.weight" in spec
    assert len(spec) == 53 * 6 + 2  # 53 conv+BN pairs (5 BN tensors each), fc weight and bias
    spec101 = arch.state_dict_spec(arch.ARCHS["wrn101_2"])
    assert "layer3.22.conv3.weight" in spec101 and "layer3.23.conv3.weight" not in spec101


def test_synthetic_state_dict_has_exactly_the_spec():
    a = arch.ARCHS["wrn50_2"]
    sd = weights.synthetic_state_dict(a, seed=3)
    spec = arch.state_dict_spec(a)
    assert list(sd) == list(spec)
    for k, shape in spec.items():
        assert sd[k].shape == shape, k
        assert sd[k].dtype == (np.int64 if k.endswith("num_batches_tracked") else np.float32), k
    weights.check_state_dict(a, sd)
    again = weights.synthetic_state_dict(a, seed=3)
    assert all(np.array_equal(sd[k], again[k]) for k in sd), "synthetic weights must be reproducible"


def test_check_state_dict_names_what_is_wrong():
    a = arch.ARCHS["wrn50_2"]
    sd = weights.synthetic_state_dict(a, seed=0)
    del sd["layer2.1.bn2.running_mean"]
    sd["extra.weight"] = np.zeros(3, np.float32)
    sd["fc.bias"] = np.zeros(999, np.float32)
    with pytest.raises(ValueError) as e:
        weights.check_state_dict(a, sd)
    msg = str(e.value)
    assert "layer2.1.bn2.running_mean" in msg and "extra.weight" in msg and "fc.bias" in msg
