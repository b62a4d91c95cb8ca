"""A network plug-in (config/plugins.py) is asked for what core modules know nothing of: the
config check of its network and its rows of report.html's kind of run. A fake plug-in,
registered for the test only, shows that nothing below it decides for it."""

from __future__ import annotations

import sys
import types

import pytest

from difflab.config.build import build_config
from difflab.config.plugins import NETWORK_PLUGINS
from difflab.core.errors import ConfigError
from difflab.runs.report_sections import run_kind

MODULE = "difflab_test_fake_plugin"


@pytest.fixture
def fake_plugin(monkeypatch):
    """A plug-in for model.network 'fake-net' whose check refuses data.root 'refused'."""
    plugin = types.ModuleType(MODULE)

    def check_config(config):
        if config.data.root == "refused":
            raise ConfigError("fake-net refuses data.root 'refused'")

    plugin.check_config = check_config
    plugin.report_rows = lambda config: [("fake", f"from {config['model']['pretrained']}")]
    plugin.conditioning = lambda guidance: f"fake text, guidance {guidance}"
    monkeypatch.setitem(sys.modules, MODULE, plugin)
    monkeypatch.setitem(NETWORK_PLUGINS._items, "fake-net", MODULE)
    return plugin


def test_a_plugin_network_is_checked_by_its_plugin_only(fake_plugin):
    model = {"network": "fake-net", "pretrained": "w", "options": {"width": 3}}
    config = build_config({"model": model, "data": {"options": {"x": 1}}})
    assert config.model.options == {"width": 3} and config.data.options == {"x": 1}
    with pytest.raises(ConfigError, match="fake-net refuses data.root 'refused'"):
        build_config({"model": model, "data": {"root": "refused"}})


def test_a_preset_network_takes_no_pretrained_folder(fake_plugin):
    with pytest.raises(ConfigError, match=r"'model.network' must be one of .*'fake-net'.*"):
        build_config({"model": {"network": "unet-tiny", "pretrained": "w"}})


def test_the_report_names_a_plugin_run_as_its_plugin_says(fake_plugin, tmp_path):
    config = {"model": {"network": "fake-net", "pretrained": "w"}, "sample": {"guidance": 2}}
    table = run_kind(tmp_path, config)
    assert "<th>fake</th><td>from w</td>" in table
    assert "<th>conditioning</th><td>fake text, guidance 2</td>" in table
