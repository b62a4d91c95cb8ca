"""build_network: presets by name, option overrides, and errors that name the bad key/value."""

import pytest

from difflab.core.errors import ConfigError
from difflab.networks import NETWORKS, DiT, UNet, build_network


def build(name="unet-tiny", **options):
    return build_network(name, in_channels=1, image_size=8, num_classes=10, options=options)


def test_options_override_preset_fields():
    net = build(base_channels=16, channel_mults=[1, 2])  # a YAML list becomes a tuple
    assert isinstance(net, UNet)
    assert net.config.base_channels == 16
    assert net.config.channel_mults == (1, 2)
    assert net.config.num_classes == 10
    assert net.conv_in.out_channels == 16


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="'unet-huge'.*unet-tiny"):
        build("unet-huge")


def test_unknown_option_names_the_key_and_the_valid_ones():
    with pytest.raises(ConfigError, match="model.options.base_channel .*base_channels.*dropout"):
        build(base_channel=8)


@pytest.mark.parametrize("key", ["in_channels", "image_size", "num_classes"])
def test_data_fields_are_not_options(key):
    with pytest.raises(ConfigError, match=key):
        build(**{key: 3})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"base_channels": "32"}, "base_channels"),
        ({"base_channels": 32.0}, "base_channels"),
        ({"dropout": "0.1"}, "dropout"),
        ({"channel_mults": (1, 2.5)}, "channel_mults"),
        ({"blocks_per_level": True}, "blocks_per_level"),
    ],
)
def test_wrong_type_names_the_key(options, message):
    with pytest.raises(ConfigError, match=message):
        build(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"base_channels": 12}, r"norm_groups=8.*\[12, 24\]"),
        ({"channel_mults": (1, 2, 2, 2, 2)}, r"image_size=8.*factor 16"),
        ({"attention_resolutions": (3,)}, r"attention_resolutions=\(3,\).*\[8, 4\]"),
        ({"num_heads": 3}, "num_heads=3"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"channel_mults": ()}, "channel_mults"),
        ({"blocks_per_level": 0}, "blocks_per_level=0"),
    ],
)
def test_impossible_value_names_the_key(options, message):
    with pytest.raises(ConfigError, match=message):
        build(**options)


def test_image_size_not_divisible_by_downsampling_factor():
    with pytest.raises(ConfigError, match=r"image_size=30.*factor 4"):
        build_network("unet-small", in_channels=1, image_size=30, num_classes=None)


def test_dit_options_and_impossible_values():
    net = build("dit-tiny", depth=1, out_channels=2)
    assert isinstance(net, DiT)
    assert len(net.blocks) == 1
    assert net.config.out_channels == 2
    with pytest.raises(ConfigError, match=r"image_size=8.*patch_size=3"):
        build("dit-tiny", patch_size=3)
    with pytest.raises(ConfigError, match=r"hidden_size=64.*num_heads=3"):
        build("dit-tiny", num_heads=3)
    with pytest.raises(ConfigError, match="model.options.base_channels .*hidden_size"):
        build("dit-tiny", base_channels=8)


def test_bad_data_shape_names_the_argument():
    with pytest.raises(ConfigError, match="in_channels"):
        build_network("unet-tiny", in_channels=0, image_size=8, num_classes=None)
    with pytest.raises(ConfigError, match="num_classes"):
        build_network("unet-tiny", in_channels=1, image_size=8, num_classes=0)


def test_every_preset_is_listed():
    expected = {"unet-tiny", "unet-small", "unet-cifar10", "dit-tiny", "dit-s/2", "dit-b/2"}
    assert expected <= set(NETWORKS.names())
