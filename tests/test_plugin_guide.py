"""docs/plugins.md works as written: its files, its test recipe in strict mode, its install.

The guide's files are cut out of the markdown (each block follows a line naming
its path), written to an empty folder, and used as a stranger would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
FILE_BLOCK = re.compile(r"^`([\w./-]+)`:\n\n```\w+\n(.*?)^```", re.S | re.M)


@pytest.fixture(scope="module")
def plugin_folder(tmp_path_factory):
    files = dict(FILE_BLOCK.findall(GUIDE.read_text()))
    assert set(files) == {"pyproject.toml", "src/sktransfer_squeezenet/__init__.py",
                          "tests/test_plugin.py"}
    root = tmp_path_factory.mktemp("guide") / "sktransfer-squeezenet"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _env(**extra):
    env = {**os.environ, "OMP_NUM_THREADS": "2", **extra}
    env.pop("SKTRANSFER_DISABLE_PLUGINS", None)
    return env


def test_the_guide_uses_public_names_only(plugin_folder):
    for path in plugin_folder.rglob("*.py"):
        private = re.findall(r"sktransfer(?:\.\w+)*\._\w+|\._resolve", path.read_text())
        assert not private, f"{path.name} reaches private names: {private}"


def test_the_guide_test_recipe_passes_in_strict_mode(plugin_folder):
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                          cwd=plugin_folder, env=_env(SKTRANSFER_STRICT_PLUGINS="1"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "6 passed" in proc.stdout


def test_the_guide_plugin_installs_and_is_listed(plugin_folder, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(site), str(plugin_folder)],
                   check=True, capture_output=True, timeout=300, env=_env(TORCH_HOME=str(tmp_path)))
    env = _env(PYTHONPATH=str(site), SKTRANSFER_STRICT_PLUGINS="1", TORCH_HOME=str(tmp_path))
    rows = {}
    for command in (["backbones", "squeeze*"], ["strategies", "head*"]):
        proc = subprocess.run([sys.executable, "-m", "sktransfer.cli", *command], env=env,
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        rows[command[0]] = proc.stdout.splitlines()[-1].split()
    assert rows["backbones"] == ["squeezenet1_1", "sktransfer-squeezenet", "no",
                                 "squeezenet1_1-b8a52dc0.pth", "(torch", "hub", "cache)"]
    assert rows["strategies"][:5] == ["head_first", "sktransfer-squeezenet", "only", "the",
                                      "new"]


@pytest.mark.parametrize("module", ["sktransfer.freezing", "sktransfer.freezing._base",
                                    "sktransfer.backbones", "sktransfer.backbones._pretrained",
                                    "sktransfer.backbones._weights", "sktransfer.testing"])
def test_plugin_api_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
