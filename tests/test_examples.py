"""Every script in examples/ runs, in its fast mode (SKTRANSFER_FAST=1), in a fresh folder."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sktransfer import list_backbones

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
NEEDS_PLUGIN = {"demo.py", "quickstart.py", "grid_search_freeze_depth.py",
                "pipeline_feature_extractor.py", "finetune_image_folder.py"}
HAVE_LITE = bool(list_backbones("efficientnet_lite0"))


def run_example(name, cwd, *args):
    env = {**os.environ, "SKTRANSFER_FAST": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "2"}
    env.pop("SKTRANSFER_DEMO_OUTPUT", None)
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_the_issue_examples_exist():
    assert {"demo.py", "quickstart.py", "grid_search_freeze_depth.py",
            "pipeline_feature_extractor.py", "finetune_image_folder.py",
            "write_a_plugin.py"} <= set(SCRIPTS)


@pytest.mark.slow
@pytest.mark.parametrize("name", SCRIPTS)
def test_example_runs(name, tmp_path):
    if name in NEEDS_PLUGIN and not HAVE_LITE:
        pytest.skip("needs the sktransfer-efficientnet-lite plugin (pip install -e "
                    "plugins/sktransfer-efficientnet-lite)")
    out = run_example(name, tmp_path)
    assert out.strip(), f"{name} printed nothing"
    if name == "demo.py":
        assert "test accuracy" in out and "fit time (s)" in out
        for method in ["raw pixels", "FeatureExtractor", "TransferClassifier",
                       "TransferClassifierCV: picks"]:
            assert method in out
        assert out.strip().splitlines()[-1].startswith("Plots written to")
        for png in ["freeze_depth.png", "learning_curve.png"]:
            data = (tmp_path / "demo_output" / png).read_bytes()
            assert data.startswith(b"\x89PNG") and len(data) > 5000
    if name == "grid_search_freeze_depth.py":
        assert (tmp_path / "freeze_depth.png").stat().st_size > 5000
    if name == "finetune_image_folder.py":
        assert (tmp_path / "model.joblib").is_file()
        assert (tmp_path / "learning_curve.png").stat().st_size > 5000
