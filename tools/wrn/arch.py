"""Wide-ResNet architectures in torchvision/timm state-dict layout: keys, shapes, parameter and MAC counts."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Arch:
    name: str          # our short name, used in file names and the manifest
    timm_name: str     # the timm model name, used to find published weights
    blocks: tuple      # bottleneck blocks per stage
    published_params: int

    width_factor: int = 2       # "wide": bottleneck inner width twice torchvision's ResNet
    num_classes: int = 1000
    input_size: int = 224


ARCHS = {
    "wrn50_2": Arch("wrn50_2", "wide_resnet50_2", (3, 4, 6, 3), 68_883_240),
    "wrn101_2": Arch("wrn101_2", "wide_resnet101_2", (3, 4, 23, 3), 126_886_696),
}

STAGE_PLANES = (64, 128, 256, 512)
EXPANSION = 4
BN_PARAMS = ("weight", "bias")
BN_BUFFERS = ("running_mean", "running_var")
# torch's BatchNorm2d also saves this counter; it plays no part at inference and some files omit it.
BN_OPTIONAL = "num_batches_tracked"


@dataclass(frozen=True)
class ConvSpec:
    """One convolution followed by its batch norm, as the state dict names them."""
    conv: str           # key prefix of the conv weight, e.g. "layer1.0.conv2"
    bn: str             # key prefix of its batch norm, e.g. "layer1.0.bn2"
    in_ch: int
    out_ch: int
    kernel: int
    stride: int

    @property
    def pad(self):
        return self.kernel // 2


@dataclass(frozen=True)
class BlockSpec:
    prefix: str
    convs: tuple            # conv1 (1x1), conv2 (3x3, carries the stride), conv3 (1x1)
    downsample: ConvSpec | None


def stem(arch: Arch) -> ConvSpec:
    return ConvSpec("conv1", "bn1", 3, 64, 7, 2)


def blocks(arch: Arch):
    """The bottleneck blocks in execution order."""
    in_ch = 64
    out = []
    for stage, (planes, count) in enumerate(zip(STAGE_PLANES, arch.blocks), start=1):
        width = planes * arch.width_factor
        out_ch = planes * EXPANSION
        for b in range(count):
            stride = 2 if (b == 0 and stage > 1) else 1
            p = f"layer{stage}.{b}"
            convs = (
                ConvSpec(f"{p}.conv1", f"{p}.bn1", in_ch, width, 1, 1),
                ConvSpec(f"{p}.conv2", f"{p}.bn2", width, width, 3, stride),
                ConvSpec(f"{p}.conv3", f"{p}.bn3", width, out_ch, 1, 1),
            )
            ds = None
            if b == 0:
                ds = ConvSpec(f"{p}.downsample.0", f"{p}.downsample.1", in_ch, out_ch, 1, stride)
            out.append(BlockSpec(p, convs, ds))
            in_ch = out_ch
    return out


def all_convs(arch: Arch):
    yield stem(arch)
    for blk in blocks(arch):
        yield from blk.convs
        if blk.downsample:
            yield blk.downsample


def feature_channels(arch: Arch) -> int:
    return STAGE_PLANES[-1] * EXPANSION


def state_dict_spec(arch: Arch, with_optional: bool = True) -> dict:
    """Every key of the state dict with its shape, in torchvision's order."""
    spec = {}
    for c in all_convs(arch):
        spec[f"{c.conv}.weight"] = (c.out_ch, c.in_ch, c.kernel, c.kernel)
        for name in BN_PARAMS + BN_BUFFERS:
            spec[f"{c.bn}.{name}"] = (c.out_ch,)
        if with_optional:
            spec[f"{c.bn}.{BN_OPTIONAL}"] = ()
    spec["fc.weight"] = (arch.num_classes, feature_channels(arch))
    spec["fc.bias"] = (arch.num_classes,)
    return spec


def is_parameter(key: str) -> bool:
    """True for learnable parameters (what published parameter counts count), False for buffers."""
    return not key.endswith(BN_BUFFERS + (BN_OPTIONAL,))


def param_count(arch: Arch) -> int:
    total = 0
    for key, shape in state_dict_spec(arch).items():
        if is_parameter(key):
            n = 1
            for d in shape:
                n *= d
            total += n
    return total


def macs(arch: Arch) -> int:
    """Multiply-accumulates of one 224x224 inference: convolutions and the classifier."""
    total = 0
    size = arch.input_size
    c = stem(arch)
    size = _out_size(size, c)
    total += size * size * c.out_ch * c.in_ch * c.kernel * c.kernel
    size = (size + 2 - 3) // 2 + 1  # max pool 3x3 stride 2 pad 1
    for blk in blocks(arch):
        block_in = size
        for c in blk.convs:
            size = _out_size(size, c)
            total += size * size * c.out_ch * c.in_ch * c.kernel * c.kernel
        if blk.downsample:
            d = blk.downsample
            s = _out_size(block_in, d)
            total += s * s * d.out_ch * d.in_ch
    total += feature_channels(arch) * arch.num_classes
    return total


def _out_size(size: int, c: ConvSpec) -> int:
    return (size + 2 * c.pad - c.kernel) // c.stride + 1
