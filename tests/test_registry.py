import importlib.metadata
import re
import warnings

import pytest

import sktransfer
from sktransfer import (PluginError, get_backbone, get_freezer, get_strategy, list_backbones,
                        list_freezers, list_strategies, register_backbone, register_freezer,
                        register_strategy)
from sktransfer._registry import Registry
from sktransfer.backbones import BACKBONES, Backbone, GlobalPool
from sktransfer.freezing import FREEZERS, STRATEGIES, FreezeStrategy
from sktransfer.testing import fake_entry_points
from torch import nn


def _tiny(weights=None):
    return Backbone("tmp", [nn.Conv2d(3, 4, 3)], GlobalPool(), num_features=4)


def test_builtins_come_through_entry_points():
    assert BACKBONES.source("tiny_cnn") == "sktransfer"
    assert BACKBONES.source("resnet18") == "sktransfer"
    assert FREEZERS.source("depth") == "sktransfer"
    assert {"depth", "gradual", "discriminative", "bitfit", "lp_ft"} <= set(list_freezers())


def test_fnmatch_filter():
    assert list_backbones("resnet1*") == ["resnet101", "resnet152", "resnet18"]
    assert list_freezers("*fit") == ["bitfit"]
    assert list_backbones("no-such-*") == []


def test_torchvision_families_listed():
    names = set(list_backbones())
    for name in ["resnet18", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0",
                 "convnext_tiny", "regnet_x_400mf", "densenet121", "vit_b_16", "swin_t"]:
        assert name in names


def test_register_and_duplicate_is_error():
    register_backbone("tmp_net")(_tiny)
    try:
        assert "tmp_net" in list_backbones()
        assert isinstance(get_backbone("tmp_net"), Backbone)
        with pytest.raises(ValueError, match="already registered"):
            register_backbone("tmp_net", _tiny)
        with pytest.raises(ValueError, match="already registered"):
            register_backbone("tiny_cnn", _tiny)
    finally:
        BACKBONES.unregister("tmp_net")
    assert "tmp_net" not in list_backbones()


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError, match=r"unknown backbone 'resnet81'.*did you mean 'resnet18'"
                                         r".*list_backbones\(\)"):
        get_backbone("resnet81")
    with pytest.raises(ValueError, match=r"did you mean 'gradual'.*list_strategies\(\)"):
        get_freezer("gradul")
    with pytest.raises(TypeError, match="must be a string"):
        get_backbone(18)


def test_namespace_registration_exact_name_wins():
    calls = []

    @register_backbone("zoo/*")
    def zoo(name, weights=None):
        calls.append(name)
        return _tiny()

    zoo.list_names = lambda: ["zoo/a", "zoo/b"]
    try:
        get_backbone("zoo/anything")
        assert calls == ["zoo/anything"]
        assert {"zoo/a", "zoo/b"} <= set(list_backbones("zoo/*"))
        register_backbone("zoo/special")(_tiny)
        get_backbone("zoo/special")
        assert calls == ["zoo/anything"]
    finally:
        BACKBONES.unregister("zoo/*")
        BACKBONES.unregister("zoo/special")


def test_check_name_resolves_like_get_backbone():
    """A name the namespace builds passes the CLI's up-front check, listed or not."""
    built = []

    @register_backbone("zoo/*")
    def zoo(name, weights=None):
        built.append(name)
        return _tiny()

    zoo.list_names = lambda: ["zoo/a"]  # a listing is what is offered, not all it builds
    try:
        BACKBONES.check_name("zoo/a.variant")
        get_backbone("zoo/a.variant")
        assert built == ["zoo/a.variant"]
        zoo.provides = lambda name: name != "zoo/nope"
        with pytest.raises(ValueError, match="unknown backbone 'zoo/nope'"):
            BACKBONES.check_name("zoo/nope")

        def own_check(name):
            raise ValueError(f"zoo has no animal {name[4:]!r}")

        zoo.check_name = own_check  # a namespace explains itself
        with pytest.raises(ValueError, match="zoo has no animal 'b'"):
            BACKBONES.check_name("zoo/b")
    finally:
        BACKBONES.unregister("zoo/*")


def test_register_freezer_decorator():
    @register_freezer("noop_test")
    class Noop(FreezeStrategy):
        def __init__(self, strength=1):
            self.strength = strength

    try:
        f = get_freezer("noop_test", strength=3)
        assert isinstance(f, Noop) and f.strength == 3
    finally:
        FREEZERS.unregister("noop_test")


def test_broken_plugin_warns_by_name_and_others_work(monkeypatch):
    monkeypatch.delenv("SKTRANSFER_STRICT_PLUGINS", raising=False)
    fakes = {"sktransfer.backbones": {"fake_good": "sktransfer.backbones._tiny:tiny_cnn",
                                      "fake_broken": "no_such_module_xyz:build"}}
    with fake_entry_points(fakes):
        _check_broken_plugin()


def _check_broken_plugin():
    registry = Registry("backbone", "sktransfer.backbones", "list_backbones")
    with pytest.warns(RuntimeWarning, match=r"fake_broken.*No module named 'no_such_module_xyz'"):
        names = registry.list()
    assert "fake_good" in names and "tiny_cnn" in names and "fake_broken" not in names
    assert isinstance(registry.get("fake_good"), Backbone)
    with pytest.raises(PluginError, match="fake_broken.*failed to load") as info:
        registry.get("fake_broken")
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    assert "fake_broken" in registry.failed()


def test_strict_plugins_env_turns_warning_into_error(monkeypatch):
    monkeypatch.setenv("SKTRANSFER_STRICT_PLUGINS", "1")
    with fake_entry_points({"sktransfer.backbones": {"fake_broken": "no_such_module_xyz:build"}}):
        registry = Registry("backbone", "sktransfer.backbones", "list_backbones")
        with pytest.raises(PluginError, match="fake_broken"):
            registry.list()


# -- sktransfer.testing.fake_entry_points -------------------------------------------------
def test_fake_entry_points_pass_strict_mode_and_leave_other_groups_alone(monkeypatch):
    monkeypatch.setenv("SKTRANSFER_STRICT_PLUGINS", "1")
    real = importlib.metadata.entry_points
    scripts = real(group="console_scripts").names

    def fake_net(weights=None):  # a local object is fine: it is made importable
        return _tiny(weights)

    with fake_entry_points({"sktransfer.backbones": {"fake_net": fake_net}},
                           distribution="sktransfer-fake") as added:
        assert [ep.name for ep in added] == ["fake_net"]
        # what other libraries do while the patch is active (triton's .select did break)
        assert importlib.metadata.entry_points().select(group="console_scripts").names == scripts
        assert importlib.metadata.entry_points(group="console_scripts").names == scripts
        found = importlib.metadata.entry_points(group="sktransfer.backbones")
        assert isinstance(found, importlib.metadata.EntryPoints) and "fake_net" in found.names
        assert get_backbone("fake_net").n_blocks == 1
        assert BACKBONES.source("fake_net") == "sktransfer-fake"
    assert importlib.metadata.entry_points is real
    assert "fake_net" not in list_backbones()


def test_fake_entry_points_are_skipped_when_plugins_are_disabled(monkeypatch):
    monkeypatch.setenv("SKTRANSFER_DISABLE_PLUGINS", "1")
    with fake_entry_points({"sktransfer.backbones": {"fake_net": _tiny}}):
        assert "fake_net" not in list_backbones()


# -- one name per concept: strategies, with the freezer names as aliases ----------------
def test_strategy_names_and_their_freezer_aliases():
    assert register_freezer is register_strategy and get_freezer is get_strategy
    assert list_freezers is list_strategies and FREEZERS is STRATEGIES
    assert list_strategies("*fit") == ["bitfit"]


@pytest.mark.parametrize("group", ["sktransfer.strategies", "sktransfer.freezers"])
def test_strategies_come_from_the_new_group_and_the_old_one(group, monkeypatch):
    monkeypatch.setenv("SKTRANSFER_STRICT_PLUGINS", "1")

    class Fake(FreezeStrategy):
        """Fake: a strategy from a plugin."""

    with fake_entry_points({group: {"fake_strategy": Fake}}, distribution="fake-strategies"):
        assert "fake_strategy" in list_strategies()
        assert STRATEGIES.source("fake_strategy") == "fake-strategies"
        assert type(get_strategy("fake_strategy")).__name__ == "Fake"
    assert "fake_strategy" not in list_strategies()


def test_discovery_is_lazy_and_once(monkeypatch):
    calls = []
    real = importlib.metadata.entry_points

    def counting(**kw):
        calls.append(kw.get("group"))
        return real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", counting)
    registry = Registry("backbone", "sktransfer.backbones", "list_backbones")
    assert calls == []
    registry.list()
    registry.get("tiny_cnn")
    registry.list("res*")
    assert calls == ["sktransfer.backbones"]
    registry.refresh()
    registry.list()
    assert len(calls) == 2


def test_refresh_plugins_keeps_runtime_registrations():
    register_backbone("tmp_keep")(_tiny)
    try:
        sktransfer.refresh_plugins()
        assert "tmp_keep" in list_backbones()
        assert "tiny_cnn" in list_backbones()
    finally:
        BACKBONES.unregister("tmp_keep")


# -- hostile plugins (issue 14) ------------------------------------------------------------
def _fake_entry_points(extra):
    """``entry_points`` with ``extra`` entry points (each with its own dist) added to the
    backbone group; a real ``EntryPoints`` so other libraries' look-ups keep working."""
    real = importlib.metadata.entry_points

    def entry_points(**kw):
        found = real(**kw)
        if kw.get("group") == "sktransfer.backbones":
            found = importlib.metadata.EntryPoints([*found, *extra])
        return found

    return entry_points


def _plugin(name, value, dist="evil-pkg", group="sktransfer.backbones"):
    from types import SimpleNamespace

    return importlib.metadata.EntryPoint(name, value, group)._for(SimpleNamespace(name=dist))


def test_plugin_calling_sys_exit_at_import_is_a_broken_plugin(monkeypatch, tmp_path):
    (tmp_path / "exiting_plugin_xyz.py").write_text("import sys\nsys.exit('bye')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    bad = _plugin("exiting", "exiting_plugin_xyz:build")
    monkeypatch.setattr(importlib.metadata, "entry_points", _fake_entry_points([bad]))
    registry = Registry("backbone", "sktransfer.backbones", "list_backbones")
    with pytest.warns(RuntimeWarning, match=r"'exiting' from evil-pkg.*SystemExit: bye"):
        names = registry.list()
    assert "tiny_cnn" in names and "exiting" not in names
    with pytest.raises(PluginError, match="exiting"):
        registry.get("exiting")


@pytest.mark.parametrize("name, claim", [
    ("tiny_cnn", "built-in backbone name"),     # exact, listed before sktransfer's own
    ("resnet18", "built-in namespace 'resnet*'"),  # exact, inside a built-in namespace
    ("resnet1*", "would take over"),            # a longer namespace capturing built-ins
    ("resnet*", "built-in backbone name"),      # the same namespace
])
def test_plugins_cannot_take_over_builtin_names(monkeypatch, name, claim):
    evil = _plugin(name, "sktransfer.backbones._tiny:mlp")
    real = importlib.metadata.entry_points

    def plugin_first(**kw):  # the plugin is listed before sktransfer itself
        found = list(real(**kw))
        return [evil] + found if kw.get("group") == "sktransfer.backbones" else found

    monkeypatch.setattr(importlib.metadata, "entry_points", plugin_first)
    registry = Registry("backbone", "sktransfer.backbones", "list_backbones")
    with pytest.warns(RuntimeWarning, match=rf"{re.escape(repr(name))} from evil-pkg is "
                                            rf"ignored: .*{re.escape(claim)}"):
        registry.list()
    target = "tiny_cnn" if name == "tiny_cnn" else "resnet18"
    assert registry.source(target) == "sktransfer"
    assert registry.failed() == {}  # the built-in is not reported as the broken one


def test_plugin_names_beside_builtins_still_work(monkeypatch):
    extra = [_plugin("efficientnet_lite9", "sktransfer.backbones._tiny:tiny_cnn"),
             _plugin("resnet_custom*", "sktransfer.backbones._tiny:tiny_cnn")]
    monkeypatch.setattr(importlib.metadata, "entry_points", _fake_entry_points(extra))
    registry = Registry("backbone", "sktransfer.backbones", "list_backbones")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry.list()
    assert registry.source("efficientnet_lite9") == "evil-pkg"
    assert registry.source("resnet_custom*") == "evil-pkg"


@pytest.mark.parametrize("value, strict", [("1", True), ("yes", True), ("ON", True),
                                           ("0", False), ("false", False), ("no", False),
                                           ("off", False), ("", False)])
def test_plugin_env_flags_read_every_spelling(monkeypatch, value, strict):
    bad = importlib.metadata.EntryPoint("fake_broken", "no_such_module_xyz:build",
                                        "sktransfer.backbones")
    monkeypatch.setattr(importlib.metadata, "entry_points", _fake_entry_points([bad]))
    monkeypatch.setenv("SKTRANSFER_STRICT_PLUGINS", value)
    registry = Registry("backbone", "sktransfer.backbones", "list_backbones")
    if strict:
        with pytest.raises(PluginError):
            registry.list()
    else:
        with pytest.warns(RuntimeWarning):
            registry.list()


def test_plugin_env_flag_typo_is_an_error(monkeypatch):
    monkeypatch.setenv("SKTRANSFER_DISABLE_PLUGINS", "nope")
    registry = Registry("backbone", "sktransfer.backbones", "list_backbones")
    with pytest.raises(ValueError, match=r"SKTRANSFER_DISABLE_PLUGINS='nope' is not a boolean"):
        registry.list()


# -- issue 23: suggestions and cold start ----------------------------------------------------
def test_unknown_name_suggests_names_that_start_with_it_first():
    with pytest.raises(ValueError, match=r"unknown backbone 'efficientnet_lite'; did you mean "
                                         r"'efficientnet_lite0'"):
        get_backbone("efficientnet_lite")


def test_looking_up_one_name_does_not_import_torchvision():
    import subprocess
    import sys

    code = ("import sys, sktransfer\n"
            "sktransfer.get_backbone('tiny_cnn')\n"
            "assert 'torchvision' not in sys.modules, 'tiny_cnn imported torchvision'\n"
            "sktransfer.get_backbone('resnet18', weights=None)\n"
            "from sktransfer.backbones._torchvision import _torchvision_names\n"
            "assert _torchvision_names.cache_info().currsize == 0, 'resnet18 listed them all'\n")
    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_plugin_name_inside_a_builtin_namespace_is_checked_when_looked_up(monkeypatch):
    extra = [_plugin("resnet18", "sktransfer.backbones._tiny:mlp")]
    monkeypatch.setattr(importlib.metadata, "entry_points", _fake_entry_points(extra))
    registry = Registry("backbone", "sktransfer.backbones", "list_backbones")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert registry.source("tiny_cnn") == "sktransfer"  # no verdict needed yet
    with pytest.warns(RuntimeWarning, match=r"'resnet18' from evil-pkg is ignored"):
        assert registry.source("resnet18") == "sktransfer"
