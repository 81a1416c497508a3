import json

import pytest

from astro_morph.models.arch import (
    G0,
    VARIANTS,
    ArchConfig,
    MBConvConfig,
    adjust_channels,
    adjust_depth,
    compound_scale,
    get_arch,
    make_divisible,
)
from astro_morph.models.flops import count


def test_g0_is_the_papers_table_2():
    assert G0.table() == [
        ("Conv5x5", "32x32", 32, 1),
        ("MBConv1, k3x3", "16x16", 16, 1),
        ("MBConv6, k3x3", "16x16", 24, 2),
        ("MBConv6, k5x5", "8x8", 40, 2),
        ("MBConv6, k3x3", "4x4", 80, 3),
        ("Conv1x1 & Pooling & FC", "2x2", 160, 1),
    ]


def test_torchvision_rounding_rules():
    assert make_divisible(35.2) == 32 and make_divisible(17.6) == 16
    assert make_divisible(12) == 16  # never more than 10 % below the value
    assert adjust_channels(40, 1.1**3) == 56
    assert adjust_depth(2, 1.15) == 3 and adjust_depth(1, 1.0) == 1


@pytest.mark.parametrize("phi", [1, 2, 3])
def test_compound_scaling_follows_eq6(phi):
    g = VARIANTS[f"efficientnet-g{phi}"]
    assert g.resolution == round(32 * 1.2**phi)
    for base, scaled in zip(G0.blocks, g.blocks, strict=True):
        assert scaled.layers == adjust_depth(base.layers, 1.15**phi)
        assert scaled.out_channels == adjust_channels(base.out_channels, 1.1**phi)
        assert (scaled.kernel, scaled.expand_ratio, scaled.stride) == (
            base.kernel, base.expand_ratio, base.stride)
    assert compound_scale(G0, phi) == g.__class__(**{**g.__dict__, "name": G0.name, "meta": {}})


def test_scaling_refuses_factors_below_one():
    with pytest.raises(ValueError, match=">= 1"):
        compound_scale(G0, 1, alpha=0.9)


def test_json_round_trip_and_block_strings():
    for arch in VARIANTS.values():
        again = ArchConfig.from_dict(json.loads(json.dumps(arch.to_dict())))
        assert again == arch
    assert MBConvConfig.from_string("e6_k5_s2_c40_n2_se", 24) == MBConvConfig(6, 5, 2, 24, 40, 2)
    with pytest.raises(ValueError, match="bad block string"):
        MBConvConfig.from_string("e6_k5_c40", 24)
    with pytest.raises(ValueError, match="odd"):
        MBConvConfig(6, 4, 1, 8, 8, 1)


def test_chained_channels_are_checked():
    with pytest.raises(ValueError, match="stage 3 takes 99"):
        ArchConfig("bad", (MBConvConfig(1, 3, 1, 32, 16, 1), MBConvConfig(6, 3, 2, 99, 24, 1)))


def test_get_arch_names_and_errors(tmp_path):
    assert get_arch("G0") is G0
    f = tmp_path / "geno.json"
    f.write_text(json.dumps({"arch": G0.to_dict()}))
    assert get_arch(str(f)) == G0
    from astro_morph.errors import UserError

    with pytest.raises(UserError, match="efficientnet-g0"):
        get_arch("efficientnet-g9")


@pytest.mark.parametrize("name", list(VARIANTS))
def test_counts_match_torch(name):
    torch = pytest.importorskip("torch")
    from astro_morph.models.efficientnet_g import build_model

    arch = VARIANTS[name]
    res = min(arch.resolution, 64)
    net = build_model(arch, 5).eval()
    macs = 0

    def hook(module, inputs, output):
        nonlocal macs
        if isinstance(module, torch.nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            macs += k * module.in_channels // module.groups * output.numel()
        elif isinstance(module, torch.nn.Linear):
            macs += module.in_features * module.out_features

    for m in net.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        net(torch.zeros(1, 3, res, res))
    c = count(arch, 5, resolution=res)
    assert c.params == sum(p.numel() for p in net.parameters())
    assert c.macs == macs
    assert c.macs < c.flops_eq13 < 2 * c.macs


def test_known_baseline_figures():
    # Published figures: B0 0.39B multiply-adds and 5.29M params (1000 classes);
    # MobileNetV2 300M multiply-adds and 3.4M params.
    b0 = count(VARIANTS["efficientnet-b0"], 1000)
    assert abs(b0.macs / 1e9 - 0.39) < 0.01 and abs(b0.params / 1e6 - 5.29) < 0.01
    mv2 = count(VARIANTS["mobilenet-v2"], 1000)
    assert abs(mv2.macs / 1e6 - 300) < 3 and abs(mv2.params / 1e6 - 3.5) < 0.05


@pytest.mark.parametrize(("arch", "says"), [
    ([1, 2], "expected a JSON object"),
    ({"arch": {"name": "x"}}, "'blocks' must be a list"),
    ({"arch": {"name": "x", "blocks": []}}, "at least one block"),
    ({"arch": {"name": "x", "blocks": ["e1_k3_s1_c16_n1"], "resolution": 0}},
     "resolution must be an integer of 8-1024 pixels, got 0"),
    ({"arch": {"name": "x", "blocks": ["e1_k3_s1_c16_n1"], "dropout": 1.5}},
     "dropout must be a number in"),
    ({"arch": {"name": "x", "blocks": ["e1_k3_s1_c16_n1"], "stem_kernel": 0}},
     "stem_kernel must be a positive integer"),
])
def test_a_bad_genotype_file_is_one_line(tmp_path, arch, says):
    """Genotype files are user input: before, resolution 0 reached torch ('height and width
    must be > 0') and a JSON list an AttributeError, both as tracebacks."""
    from astro_morph.errors import UserError
    from astro_morph.models.arch import load_arch

    path = tmp_path / "g.json"
    path.write_text(json.dumps(arch))
    with pytest.raises(UserError, match=f"cannot read architecture file .*g.json: .*{says}"):
        load_arch(path)
