"""Hold up: persistence, devices, reproducibility, resume and safety.

The test machine has no GPU, so the CUDA paths are exercised the way a
CPU-only machine meets them: ``torch.cuda.is_available`` is patched to say
there is a GPU (device resolution), or a model's tensors are tagged as living
on ``cuda:0`` when pickled (loading a CUDA-fitted model on a CPU machine).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import pickle
import sys
import types
import warnings

import joblib
import numpy as np
import pytest
import torch
import torch.serialization
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from skorch.callbacks import Callback, Checkpoint, LoadInitState

import sktransfer
from sktransfer import (FeatureExtractor, TransferClassifier, UnsafeWeightsError, get_backbone,
                        list_backbones, refresh_plugins)
from sktransfer._common import resolve_device
from sktransfer.backbones import load_state_dict_file


def _clf(**kw):
    params = dict(backbone="tiny_cnn", weights=None, freeze_depth=2, max_epochs=2, lr=1e-2,
                  batch_size=16, random_state=0)
    params.update(kw)
    return TransferClassifier(**params)


@pytest.fixture(scope="module")
def data(make_images):
    return make_images(32)


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return _clf().fit(X, y)


# -- pickle / joblib ----------------------------------------------------------------
@pytest.mark.parametrize("dumps, loads", [
    (pickle.dumps, pickle.loads),
    (lambda obj: _joblib_bytes(obj), lambda blob: joblib.load(io.BytesIO(blob))),
], ids=["pickle", "joblib"])
def test_round_trip_gives_identical_predictions(fitted, data, dumps, loads):
    X, _ = data
    restored = loads(dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))
    np.testing.assert_array_equal(restored.predict(X), fitted.predict(X))
    np.testing.assert_array_equal(restored.classes_, ["cat", "dog"])
    assert restored.get_params()["device"] == "auto"


def _joblib_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


def test_joblib_file_round_trip(fitted, data, tmp_path):
    X, _ = data
    path = tmp_path / "model.joblib"
    joblib.dump(fitted, path)
    np.testing.assert_array_equal(joblib.load(path).predict_proba(X), fitted.predict_proba(X))


def test_feature_extractor_round_trip(data):
    X, _ = data
    fe = FeatureExtractor("tiny_cnn", weights=None, random_state=0).fit(X)
    restored = pickle.loads(pickle.dumps(fe))
    np.testing.assert_array_equal(restored.transform(X), fe.transform(X))


def test_unfitted_estimators_pickle_cheaply():
    # what joblib ships to every worker of a grid search
    assert len(pickle.dumps(_clf())) < 4_000
    assert len(pickle.dumps(FeatureExtractor("tiny_cnn", weights=None))) < 2_000


def test_saved_model_carries_no_training_data_or_caches(data):
    X, y = data
    big_X, big_y = np.concatenate([X] * 4), np.concatenate([y] * 4)
    small = _clf(max_epochs=1, batch_size=128).fit(X, y)
    big = _clf(max_epochs=1, batch_size=128).fit(big_X, big_y)
    assert small.cache_used_ and big.cache_used_
    blob_small, blob_big = pickle.dumps(small), pickle.dumps(big)
    # 96 more samples of cached (16, 16, 16) activations would be 1.5 MiB
    assert abs(len(blob_big) - len(blob_small)) < 20_000
    assert X[3].tobytes()[:256] not in blob_big
    restored = pickle.loads(blob_big)
    assert restored._fit is None


def test_pickling_keeps_backbone_and_strategy_tied_to_the_network(data):
    # the strategy must keep acting on the very network being trained after a reload
    X, y = data
    clf = _clf(freeze_depth=1, freeze_strategy="gradual", max_epochs=1).fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    assert restored.backbone_.blocks is restored.module_.blocks
    assert restored.freeze_context_.module is restored.module_
    top = restored.module_.blocks[-1][0].weight
    before = top.detach().clone()
    restored.set_params(warm_start=True, max_epochs=3)
    restored.fit(X, y)  # epochs 0-2 of this fit: the third opens the top block
    assert not torch.equal(before, restored.module_.blocks[-1][0].weight)


@contextlib.contextmanager
def _tensors_tagged_cuda(net, device="cuda"):
    """Pickle ``net`` as if it had been fitted on a GPU.

    Storages of the network, optimizer and criterion get the location tag
    ``cuda:0`` (what torch writes for real CUDA tensors), so unpickling them
    without a map to the CPU fails on this machine exactly as on any CPU-only one.
    """
    on_gpu = {t.untyped_storage().data_ptr() for t in net.module_.state_dict().values()}
    for state in net.optimizer_.state.values():
        on_gpu.update(v.untyped_storage().data_ptr() for v in state.values()
                      if isinstance(v, torch.Tensor))
    original = torch.serialization.location_tag

    def location_tag(storage):
        return "cuda:0" if storage.data_ptr() in on_gpu else original(storage)

    saved_device = net.device
    net.device = device
    torch.serialization.location_tag = location_tag
    try:
        yield
    finally:
        torch.serialization.location_tag = original
        net.device = saved_device


def test_simulated_cuda_tensors_really_need_a_map_location(fitted):
    with _tensors_tagged_cuda(fitted):
        blob = pickle.dumps(fitted.module_.head)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            pickle.loads(blob)


@pytest.mark.parametrize("device", ["cuda", "auto"])
def test_model_fitted_on_cuda_loads_on_cpu_only_machine(fitted, data, device, monkeypatch):
    X, _ = data
    with _tensors_tagged_cuda(fitted, device):
        blob = pickle.dumps(fitted)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skorch's DeviceWarning for device="cuda"
        restored = pickle.loads(blob)
    assert str(restored.device) == ("cpu" if device == "cuda" else "auto")
    assert all(p.device.type == "cpu" for p in restored.module_.parameters())
    np.testing.assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))


# -- skorch's save_params / load_params -----------------------------------------------
def test_save_params_load_params(fitted, data, tmp_path):
    X, y = data
    files = dict(f_params=tmp_path / "params.pt", f_optimizer=tmp_path / "opt.pt",
                 f_history=tmp_path / "history.json")
    fitted.save_params(**files)
    # the network is built from the data, so a new model is set up by a 0-epoch fit
    fresh = _clf(random_state=123, max_epochs=0).fit(X, y)
    assert not np.array_equal(fresh.predict_proba(X), fitted.predict_proba(X))
    fresh.load_params(**files)  # device="auto" is resolved for the map location
    np.testing.assert_array_equal(fresh.predict_proba(X), fitted.predict_proba(X))
    assert len(fresh.history) == len(fitted.history)
    assert fresh.device == "auto"


def test_load_params_of_a_cuda_checkpoint_on_cpu(fitted, data, tmp_path):
    X, y = data
    with _tensors_tagged_cuda(fitted):
        fitted.save_params(f_params=tmp_path / "params.pt")
    fresh = _clf(random_state=123, max_epochs=0).fit(X, y)
    fresh.load_params(f_params=tmp_path / "params.pt")
    np.testing.assert_array_equal(fresh.predict_proba(X), fitted.predict_proba(X))


def test_initialize_without_data_says_to_fit():
    with pytest.raises(NotFittedError, match=r"call fit\(X, y\)"):
        _clf().initialize()


# -- devices ----------------------------------------------------------------------------
def test_auto_device_picks_cuda_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda") == "cuda"
    clf = _clf()
    with clf._on_device():
        assert clf.device == "cuda"  # what skorch moves the network and batches to
    assert clf.device == "auto"
    assert clf.get_params()["device"] == "auto"


def test_auto_device_falls_back_to_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"


@pytest.mark.parametrize("make", [
    lambda: _clf(device="cuda"),
    lambda: FeatureExtractor("tiny_cnn", weights=None, device="cuda"),
], ids=["TransferClassifier", "FeatureExtractor"])
def test_cuda_without_cuda_is_a_clear_error(make, data, monkeypatch):
    X, y = data
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    est = make()
    with pytest.raises(ValueError, match="CUDA is not available.*device='auto'"):
        est.fit(X, y)


def test_unknown_device_is_a_clear_error(data):
    X, y = data
    with pytest.raises(ValueError, match="'gpu' is not a valid torch device"):
        _clf(device="gpu").fit(X, y)


def test_fitted_model_reports_cpu_work_on_cpu(fitted):
    assert all(p.device.type == "cpu" for p in fitted.module_.parameters())


def test_mixed_precision_is_a_cuda_only_option(data):
    X, y = data
    if "amp" not in _clf().get_params():
        pytest.skip("TransferClassifier has no `amp` option yet (see docs/scaling.md)")
    # on the CPU autocast is off: amp=True must not change anything
    with_amp = _clf(amp=True).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(with_amp, _clf(amp=False).fit(X, y).predict_proba(X))


# -- reproducibility --------------------------------------------------------------------
@pytest.mark.parametrize("kw", [
    dict(freeze_depth=0),
    dict(freeze_depth=2),  # trained on cached activations
    dict(freeze_depth=1, augment="flip", head_dropout=0.3, head_hidden=8),
    dict(freeze_depth=1, freeze_strategy="gradual", train_split=None),
], ids=["full", "cached", "augment+dropout", "gradual"])
def test_same_random_state_gives_bit_identical_predictions(data, kw):
    X, y = data
    first = _clf(**kw).fit(X, y).predict_proba(X)
    torch.manual_seed(12345)  # the global RNG must not matter
    np.random.seed(54321)
    second = clone(_clf(**kw)).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    other = _clf(random_state=1, **kw).fit(X, y).predict_proba(X)
    assert not np.array_equal(first, other)


def test_vector_backbone_is_reproducible():
    rng = np.random.RandomState(1)
    X, y = rng.rand(30, 6).astype(np.float32), np.array([0, 1, 2] * 10)
    make = lambda: TransferClassifier("mlp", weights=None, freeze_depth=1, max_epochs=2,  # noqa: E731
                                      head_dropout=0.2, random_state=7)
    np.testing.assert_array_equal(make().fit(X, y).predict_proba(X),
                                  make().fit(X, y).predict_proba(X))


def test_fitting_does_not_disturb_the_global_torch_rng(data):
    X, y = data
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    _clf(max_epochs=1).fit(X, y)
    torch.testing.assert_close(torch.rand(3), expected)


def test_feature_extractor_random_init_is_reproducible(data):
    X, _ = data
    a = FeatureExtractor("tiny_cnn", weights=None, random_state=3, cache=False).fit_transform(X)
    b = FeatureExtractor("tiny_cnn", weights=None, random_state=3, cache=False).fit_transform(X)
    np.testing.assert_array_equal(a, b)


# -- resume from skorch's Checkpoint / LoadInitState ------------------------------------
class _InterruptAfter(Callback):
    """Stops a fit the way Ctrl-C does, after ``epochs`` epochs."""

    def __init__(self, epochs):
        self.epochs = epochs

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) >= self.epochs:
            raise KeyboardInterrupt


@pytest.mark.parametrize("freeze_depth", [0, 2], ids=["full", "cached-prefix"])
def test_interrupted_fit_resumes_from_checkpoint(data, tmp_path, freeze_depth):
    X, y = data
    checkpoint = Checkpoint(monitor=None, dirname=str(tmp_path))
    interrupted = _clf(freeze_depth=freeze_depth, max_epochs=4,
                       callbacks=[checkpoint, _InterruptAfter(2)]).fit(X, y)
    assert len(interrupted.history) == 2
    assert (tmp_path / "params.pt").exists()

    # a new process would rebuild the model; a different seed proves the weights come
    # from the checkpoint (the frozen prefix too, before its activations are cached)
    def resumed(epochs, **kw):
        return _clf(freeze_depth=freeze_depth, max_epochs=epochs, random_state=99,
                    callbacks=[LoadInitState(checkpoint)], **kw).fit(X, y)

    at_checkpoint = resumed(0)
    np.testing.assert_array_equal(at_checkpoint.predict_proba(X), interrupted.predict_proba(X))

    continued = resumed(2)
    assert continued.history[:, "epoch"] == [1, 2, 3, 4]
    assert continued.history[:2, "train_loss"] == interrupted.history[:, "train_loss"]
    assert continued.history[-1, "train_loss"] < continued.history[0, "train_loss"]
    uncached = resumed(2, cache=False)
    np.testing.assert_allclose(continued.predict_proba(X), uncached.predict_proba(X),
                               rtol=0, atol=1e-5)


# -- safety: weights_only loading --------------------------------------------------------
class _Payload:
    """Pickles to a call of ``open(path, "w")``: loading it would create a file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def malicious_weights(tmp_path):
    state = get_backbone("tiny_cnn").blocks[0].state_dict()
    state = {f"blocks.0.{k}": v for k, v in state.items()}
    state["extra"] = _Payload(tmp_path / "pwned")
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    return path, tmp_path / "pwned"


def test_unsafe_weights_file_is_refused(malicious_weights):
    path, side_effect = malicious_weights
    with pytest.raises(UnsafeWeightsError, match="refusing to load.*safetensors"):
        load_state_dict_file(path)
    assert not side_effect.exists()


@pytest.mark.parametrize("make", [
    lambda w: _clf(weights=w, max_epochs=1),
    lambda w: FeatureExtractor("tiny_cnn", weights=w),
], ids=["TransferClassifier", "FeatureExtractor"])
def test_estimators_refuse_unsafe_weights(malicious_weights, data, make):
    X, y = data
    path, side_effect = malicious_weights
    with pytest.raises(UnsafeWeightsError, match="weights_only=True"):
        make(str(path)).fit(X, y)
    assert not side_effect.exists()
    assert issubclass(UnsafeWeightsError, ValueError)


def test_weights_are_loaded_with_weights_only(tmp_path, data, monkeypatch):
    X, _ = data
    source = FeatureExtractor("tiny_cnn", weights=None, random_state=5, cache=False).fit(X)
    path = tmp_path / "tiny.pth"
    torch.save({f"blocks.{i}.{k}": v for i, b in enumerate(source.backbone_.blocks)
                for k, v in b.state_dict().items()}, path)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    loaded = FeatureExtractor("tiny_cnn", weights=str(path), cache=False).fit(X)
    assert calls == [True]
    np.testing.assert_array_equal(loaded.transform(X), source.transform(X))


def test_corrupt_weights_file_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="broken.pth"):
        load_state_dict_file(path)


# -- safety: third-party plugins can be switched off ------------------------------------
class _FakeDist:
    def __init__(self, name):
        self.name = name
        self.metadata = {"Name": name}


@pytest.fixture
def fake_plugins(monkeypatch):
    """A third-party package that adds the backbone 'fake_net' and a broken one."""
    module = types.ModuleType("fake_sktransfer_plugin")

    def fake_net(weights=None):
        return get_backbone("tiny_cnn")

    module.fake_net = fake_net
    monkeypatch.setitem(sys.modules, "fake_sktransfer_plugin", module)
    group = "sktransfer.backbones"
    extra = [
        importlib.metadata.EntryPoint("fake_net", "fake_sktransfer_plugin:fake_net",
                                      group)._for(_FakeDist("fake-plugin")),
        importlib.metadata.EntryPoint("broken_net", "no_such_module_xyz:builder",
                                      group)._for(_FakeDist("broken-plugin")),
    ]
    real = importlib.metadata.entry_points

    def entry_points(**params):
        found = list(real(**params))
        if params.get("group") == group:
            found += extra
        return found

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.delenv("SKTRANSFER_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("SKTRANSFER_STRICT_PLUGINS", raising=False)
    refresh_plugins()
    yield
    monkeypatch.undo()
    refresh_plugins()


def test_third_party_plugins_load_by_default(fake_plugins):
    with pytest.warns(RuntimeWarning, match="'broken_net' from broken-plugin"):
        names = list_backbones()
    assert "fake_net" in names
    assert get_backbone("fake_net").n_blocks == 4


@pytest.mark.parametrize("value", ["1", "true"])
def test_disable_plugins_skips_third_party_entry_points(fake_plugins, monkeypatch, value):
    monkeypatch.setenv("SKTRANSFER_DISABLE_PLUGINS", value)
    refresh_plugins()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the broken plugin is not even imported
        names = list_backbones()
    assert "fake_net" not in names and "broken_net" not in names
    assert {"tiny_cnn", "mlp", "resnet18"} <= set(names)  # built-ins use the same door
    with pytest.raises(ValueError, match="unknown backbone 'fake_net'"):
        get_backbone("fake_net")


def test_strict_plugins_turns_a_broken_plugin_into_an_error(fake_plugins, monkeypatch):
    monkeypatch.setenv("SKTRANSFER_STRICT_PLUGINS", "1")
    refresh_plugins()
    with pytest.raises(sktransfer.PluginError, match="broken_net.*broken-plugin"):
        list_backbones()


# -- a fitted model carries what it uses -------------------------------------------------
def test_fitted_torchvision_model_does_not_carry_the_discarded_head():
    X = np.random.RandomState(0).rand(8, 32, 32, 3).astype("float32")
    clf = TransferClassifier("mobilenet_v3_small", weights=None, image_size=32, max_epochs=1,
                             device="cpu").fit(X, np.array([0, 1] * 4))
    assert clf.backbone_.source_module is None
    module = io.BytesIO()
    torch.save(clf.module_.state_dict(), module)
    # the 1000-class head (1024 x 1000 floats, ~3.9 MiB) used to ride along
    assert len(pickle.dumps(clf)) < 1.05 * module.tell()
    assert get_backbone("mobilenet_v3_small").source_module is not None  # get_backbone keeps it


# -- skops: secure persistence ----------------------------------------------------------
CLASSIFIER_TYPES = ["skorch.dataset.Dataset", "sktransfer._classifier.TransferClassifier",
                    "sktransfer._network.TransferNet",
                    "torch.nn.modules.loss.CrossEntropyLoss", "torch.optim.adamw.AdamW",
                    "torch.utils.data.dataloader.DataLoader"]


@pytest.mark.parametrize("kw", [dict(), dict(freeze_depth=0, head_hidden=4, head_dropout=0.2)],
                         ids=["cached", "fine-tuned"])
def test_skops_round_trip_predicts_identically(data, tiny_weights, tmp_path, kw):
    sio = pytest.importorskip("skops.io")
    X, y = data
    path, _ = tiny_weights
    clf = _clf(weights=str(path), **kw).fit(X, y)
    sio.dump(clf, tmp_path / "model.skops")
    # the user reads what the file asks to trust, then trusts exactly that
    untrusted = sio.get_untrusted_types(file=tmp_path / "model.skops")
    assert sorted(untrusted) == CLASSIFIER_TYPES
    loaded = sio.load(tmp_path / "model.skops", trusted=untrusted)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    np.testing.assert_array_equal(loaded.transform(X), clf.transform(X))
    assert loaded.backbone_.weights == clf.backbone_.weights == str(path)
    assert loaded.history[:, "train_loss"] == clf.history[:, "train_loss"]
    assert loaded.get_params()["device"] == "auto"
    # and it can be fitted again like any estimator
    assert clone(loaded).fit(X, y).score(X, y) >= 0.5


def test_skops_refuses_untrusted_types_by_default(fitted, tmp_path):
    sio = pytest.importorskip("skops.io")
    sio.dump(fitted, tmp_path / "model.skops")
    with pytest.raises(sio.exceptions.UntrustedTypesFoundException):
        sio.load(tmp_path / "model.skops")


def test_skops_state_never_unpickles_bytes(fitted):
    # a crafted file can only reach __setstate__, which refuses skorch's pickled blob
    state = fitted._full_state()
    assert "__cuda_dependent_attributes__" in state
    with pytest.raises(ValueError, match="refusing to unpickle"):
        TransferClassifier.__new__(TransferClassifier).__setstate__(state)
    plain = fitted.__getstate__()
    assert not any(isinstance(v, (bytes, torch.Tensor, torch.nn.Module)) for v in plain.values())


@pytest.mark.parametrize("kw", [dict(), dict(layer=1, pooling="catavgmax")], ids=["last", "layer"])
def test_skops_feature_extractor_and_pipeline(data, tiny_weights, tmp_path, kw):
    sio = pytest.importorskip("skops.io")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    X, y = data
    path, _ = tiny_weights
    pipe = make_pipeline(FeatureExtractor("tiny_cnn", weights=str(path), cache=False, **kw),
                         LogisticRegression(max_iter=300)).fit(X, y)
    sio.dump(pipe, tmp_path / "pipe.skops")
    untrusted = sio.get_untrusted_types(file=tmp_path / "pipe.skops")
    assert untrusted == ["sktransfer._extractor.FeatureExtractor"]
    loaded = sio.load(tmp_path / "pipe.skops", trusted=untrusted)
    np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))
    np.testing.assert_array_equal(loaded[0].transform(X), pipe[0].transform(X))


def test_skops_round_trip_of_unfitted_and_vector_models(tmp_path):
    sio = pytest.importorskip("skops.io")
    X = np.random.RandomState(0).rand(20, 4).astype(np.float32)
    y = np.array([0, 1] * 10)
    for estimator in (_clf(), TransferClassifier("mlp", weights=None, max_epochs=1,
                                                 random_state=0).fit(X, y)):
        blob = sio.dumps(estimator)
        loaded = sio.loads(blob, trusted=sio.get_untrusted_types(data=blob))
        assert loaded.get_params()["backbone"] == estimator.get_params()["backbone"]
        if estimator.initialized_:
            np.testing.assert_array_equal(loaded.predict_proba(X), estimator.predict_proba(X))
            assert loaded.n_features_in_ == 4


# -- what a plain (skops) state keeps, by name -----------------------------------------
@pytest.mark.parametrize("make", ["classifier", "regressor"])
def test_every_fitted_attribute_is_saved_or_rebuilt_by_name(data, make):
    # a new fitted attribute (say module_stats_) must be listed, not silently left out
    from sktransfer import TransferRegressor

    X, y = data
    est = _clf(max_epochs=1) if make == "classifier" else TransferRegressor(
        "tiny_cnn", weights=None, max_epochs=1, random_state=0)
    est.fit(X, y if make == "classifier" else (np.asarray(y) == y[0]).astype(float))
    params = set(est.get_params(deep=False))
    fitted = {k for k in vars(est) if k.endswith("_") and not k.startswith("_")} - params
    saved, rebuilt = set(est._SAVED_FITTED), est._rebuilt_fitted()
    assert not saved & rebuilt
    assert fitted <= saved | rebuilt, sorted(fitted - saved - rebuilt)
    state = est.__getstate__()
    assert {k for k in fitted if k in state} == fitted & saved


def test_an_unlisted_fitted_attribute_is_an_error_not_a_silent_loss(fitted):
    est = pickle.loads(pickle.dumps(fitted))
    est.module_stats_ = np.zeros(3)
    with pytest.raises(TypeError, match="'module_stats_'.*neither _SAVED_FITTED nor "
                                        "_REBUILT_FITTED"):
        est.__getstate__()
