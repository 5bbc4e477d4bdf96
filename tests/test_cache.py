"""Frozen-prefix caching: valid, equal to the uncached path, reused across candidates/folds."""

import os

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback
from skorch.dataset import ValidSplit

from sktransfer import TransferClassifier
from sktransfer._cache import ACTIVATIONS, clear_caches
from sktransfer._cached_fit import ActivationDataset, Activations
from sktransfer._data import PairCollate
from sktransfer._text import TextPreprocessor


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_caches()
    yield
    clear_caches()


def _count_prefix_work(monkeypatch):
    """Number of samples pushed through frozen prefixes while filling the cache."""
    import sktransfer._network as network

    pushed = []
    real = network.TransferNet.forward_prefix

    def counting(self, x, stop, start=0):
        if not self.training:
            pushed.append((start, stop, len(x)))
        return real(self, x, stop, start)

    monkeypatch.setattr(network.TransferNet, "forward_prefix", counting)
    return pushed


def test_prefix_is_computed_once_per_fit_not_per_epoch(images, monkeypatch):
    X, y = images
    pushed = _count_prefix_work(monkeypatch)
    clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth=3, max_epochs=5, batch_size=8,
                             device="cpu", random_state=0).fit(X, y)
    assert clf.cache_used_
    samples = sum(n for start, stop, n in pushed if stop == 3)
    assert samples == len(X) + 1  # every sample once, plus the one-sample size probe


def test_grid_candidates_and_folds_share_prefix_work(images, monkeypatch):
    X, y = images
    pushed = _count_prefix_work(monkeypatch)
    # batch_size=10: each fold's 20 samples fill whole batches, no padding (see the
    # batch-size test below)
    GridSearchCV(TransferClassifier("tiny_cnn", weights=None, max_epochs=2, device="cpu",
                                    random_state=0, lr=1e-2, batch_size=10),
                 {"freeze_depth": [1, 2, 3], "lr": [1e-2, 1e-3]}, cv=2).fit(X, y)
    fills = [(start, stop, n) for start, stop, n in pushed if stop < 5 and n > 1]
    from_pixels = sum(n for start, stop, n in fills if start == 0)
    # 3 depths x 2 lrs x 2 folds (+ refit) would push 13 x 20+ samples from pixels
    # without the cache; with it, each sample's stem output is computed once, and
    # deeper prefixes start from the cached shallower ones
    assert from_pixels == len(X)
    assert all(start > 0 for start, stop, n in fills if stop > 1)
    assert ACTIVATIONS.hits > 0


def test_cache_turns_itself_off_and_explains(images):
    X, y = images
    small = TransferClassifier("tiny_cnn", weights=None, freeze_depth=2, cache_memory=10,
                               max_epochs=1, device="cpu").fit(X, y)
    assert small.cache_used_ is False
    with pytest.raises(ValueError, match="cache=True but caching is not possible: the "
                                         "activations need"):
        TransferClassifier("tiny_cnn", weights=None, freeze_depth=2, cache=True,
                           cache_memory=10, max_epochs=1, device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="random augmentation"):
        TransferClassifier("tiny_cnn", weights=None, freeze_depth=2, cache=True, augment="flip",
                           max_epochs=1, device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="no stage is frozen"):
        TransferClassifier("tiny_cnn", weights=None, freeze_depth=0, cache=True,
                           max_epochs=1, device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="cache must be"):
        TransferClassifier("tiny_cnn", weights=None, cache="yes", device="cpu").fit(X, y)


def test_different_weights_do_not_share_cache_entries(images):
    X, y = images
    a = TransferClassifier("tiny_cnn", weights=None, freeze_depth=2, max_epochs=1, device="cpu",
                           random_state=0).fit(X, y)
    entries = len(ACTIVATIONS)
    b = TransferClassifier("tiny_cnn", weights=None, freeze_depth=2, max_epochs=1, device="cpu",
                           random_state=1).fit(X, y)  # other random init = other frozen weights
    assert len(ACTIVATIONS) == 2 * entries
    unc = TransferClassifier("tiny_cnn", weights=None, freeze_depth=2, max_epochs=1,
                             device="cpu", random_state=1, cache=False).fit(X, y)
    np.testing.assert_allclose(b.predict_proba(X), unc.predict_proba(X), atol=1e-5)
    assert not np.allclose(a.predict_proba(X), b.predict_proba(X))


def test_pickled_model_carries_no_cache(images):
    import pickle

    X, y = images
    clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth=2, max_epochs=1,
                             device="cpu").fit(X, y)
    blob = pickle.dumps(clf)
    assert len(ACTIVATIONS) > 0
    assert b"Activation" not in blob and b"_cached_fit" not in blob
    assert len(blob) < 2_000_000


def test_file_rewritten_with_same_size_and_mtime_is_not_served_stale(tmp_path):
    """`cp -p`, `rsync -t` and tar keep size and mtime; the cache must still notice."""
    from PIL import Image

    from sktransfer import FeatureExtractor

    path = tmp_path / "img.bmp"  # BMP: same dimensions -> same file size
    Image.new("RGB", (32, 32), (250, 10, 10)).save(path)
    stamp = os.stat(path)
    fe = FeatureExtractor("tiny_cnn", weights=None, random_state=0).fit([str(path)])
    red = fe.transform([str(path)])
    Image.new("RGB", (32, 32), (10, 10, 250)).save(path)  # rewritten in place
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert os.stat(path).st_size == stamp.st_size
    blue = fe.transform([str(path)])
    assert not np.allclose(red, blue)
    replaced = tmp_path / "new.bmp"  # a new file renamed over it, mtime copied (cp -p)
    Image.new("RGB", (32, 32), (250, 10, 10)).save(replaced)
    os.utime(replaced, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    os.replace(replaced, path)
    np.testing.assert_allclose(fe.transform([str(path)]), red, atol=1e-6)


def test_file_keys_accept_non_utf8_names(tmp_path):
    from PIL import Image

    from sktransfer._cache import sample_keys
    from sktransfer._data import as_input

    name = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.png")
    Image.new("RGB", (8, 8)).save(name)
    keys = sample_keys(as_input([name]))
    assert len(keys) == 1 and isinstance(keys[0], bytes)


def test_activation_budget_follows_the_latest_fit_and_can_be_released(images):
    import sktransfer

    X, y = images
    TransferClassifier("tiny_cnn", weights=None, freeze_depth=2, max_epochs=1, device="cpu",
                       cache_memory=8 << 30).fit(X, y)
    assert ACTIVATIONS.max_bytes == 8 << 30 and ACTIVATIONS.nbytes > 0
    TransferClassifier("tiny_cnn", weights=None, freeze_depth=2, max_epochs=1, device="cpu",
                       cache_memory=1000).fit(X, y)  # too small to cache this fit at all
    assert ACTIVATIONS.max_bytes == 1000 and ACTIVATIONS.nbytes <= 1000
    TransferClassifier("tiny_cnn", weights=None, freeze_depth=2, max_epochs=1,
                       device="cpu").fit(X, y)
    assert ACTIVATIONS.max_bytes == 2 << 30 and ACTIVATIONS.nbytes > 0
    assert "clear_caches" in sktransfer.__all__ and sktransfer.clear_caches.__doc__
    sktransfer.clear_caches()
    assert ACTIVATIONS.nbytes == 0 and len(ACTIVATIONS) == 0


def test_prediction_reuses_the_cached_prefix_and_equals_the_full_forward(images, monkeypatch):
    X, y = images
    clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth=3, max_epochs=2,
                             batch_size=8, device="cpu", random_state=0).fit(X[:30], y[:30])
    assert clf.cache_depth_ == 3
    pushed = _count_prefix_work(monkeypatch)
    proba = clf.predict_proba(X)  # 30 rows cached by the fit, 10 new ones
    features = clf.transform(X)
    from_pixels = sum(n for start, stop, n in pushed if start == 0 and n > 1)
    # only the samples the fit never saw, once, then stored: one batch of 8 and the
    # last 2 padded to 8 (every fill's batches have the same size)
    assert from_pixels == 16
    assert all(start == 3 for start, stop, n in pushed if stop == clf.module_.n_blocks + 1)
    pushed.clear()
    clf.set_params(cache=False)  # the plain path: every sample through the whole network
    np.testing.assert_allclose(clf.predict_proba(X), proba, atol=1e-5)
    np.testing.assert_allclose(clf.transform(X), features, atol=1e-5)
    assert sum(n for start, stop, n in pushed if start == 0) == 2 * len(X)


def test_prediction_after_changing_frozen_weights_does_not_serve_stale_rows(images):
    import torch

    X, y = images
    # a converged warm-up head (C=1), so the probabilities show a change of the prefix
    clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth=2, max_epochs=1,
                             device="cpu", random_state=0, head_warmup_C=1.0).fit(X, y)
    before = clf.predict_proba(X)
    with torch.no_grad():  # in place, as an optimizer step or load_state_dict would
        for p in clf.module_.blocks[0].parameters():
            p.mul_(0.5)
    after = clf.predict_proba(X)
    clf.set_params(cache=False)
    np.testing.assert_allclose(after, clf.predict_proba(X), atol=1e-5)
    assert not np.allclose(after, before, atol=1e-4)


def test_cross_validation_scores_folds_from_the_cache(images, monkeypatch):
    X, y = images
    pushed = _count_prefix_work(monkeypatch)
    # batch_size=2: the folds' 26-27 training samples and 13-14 test samples fill whole
    # batches but for one padding row per odd-sized fill
    GridSearchCV(TransferClassifier("tiny_cnn", weights=None, max_epochs=1, device="cpu",
                                    random_state=0, batch_size=2),
                 {"freeze_depth": [2, "all"]}, cv=3, refit=False).fit(X, y)
    n_stages = 5  # tiny_cnn: 4 blocks and the pool
    # no fold is scored by running its samples through the whole network from pixels
    assert not [n for start, stop, n in pushed if start == 0 and stop == n_stages and n > 1]
    assert len(X) <= sum(n for start, stop, n in pushed if start == 0 and n > 1) <= len(X) + 2


# -- training on cached activations: fast batches, same results -----------------------------
def _count_stage_work(monkeypatch):
    """``(training, start, samples)`` of every pass through the network's stages."""
    import sktransfer._network as network

    calls = []
    real = network.TransferNet.forward_prefix

    def counting(self, x, stop, start=0):
        calls.append((self.training, start, len(x)))
        return real(self, x, stop, start)

    monkeypatch.setattr(network.TransferNet, "forward_prefix", counting)
    return calls


class _BatchRecorder(Callback):
    """The targets of every training batch, in order."""

    def initialize(self):
        self.batches = []
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if training:
            self.batches.append(batch[1].tolist())


def _assert_same_training(a, b, atol=1e-5):
    for (name, p), q in zip(a.module_.named_parameters(), b.module_.parameters()):
        torch.testing.assert_close(p, q, atol=atol, rtol=1e-4, msg=name)
    for key in ("train_loss", "valid_loss"):
        if key in a.history[-1]:
            np.testing.assert_allclose(a.history[:, key], b.history[:, key], rtol=1e-4)


def test_cached_training_sees_the_same_batches_and_ends_at_the_same_weights(images):
    X, y = images
    weights = np.linspace(0.5, 2.0, len(y))
    kw = dict(weights=None, freeze_depth=2, max_epochs=2, batch_size=8, device="cpu",
              random_state=0, head_dropout=0.2, train_split=ValidSplit(4, stratified=True))
    fits = {}
    for cache in ("auto", False):
        clf = TransferClassifier("tiny_cnn", cache=cache, callbacks=[("rec", _BatchRecorder())],
                                 **kw)
        fits[cache] = clf.fit(X, y, sample_weight=weights)
    cached, plain = fits["auto"], fits[False]
    assert cached.cache_used_ and not plain.cache_used_
    rec = lambda clf: dict(clf.callbacks_)["rec"].batches  # noqa: E731
    assert rec(cached) == rec(plain) and len(rec(cached)) == 2 * 4  # 32 train samples / 8
    _assert_same_training(cached, plain)
    np.testing.assert_allclose(cached.predict_proba(X), plain.predict_proba(X), atol=1e-5)


def test_a_batch_of_cached_feature_maps_is_one_channels_last_copy():
    rows = [torch.randn(4, 3, 3) for _ in range(5)]
    data = ActivationDataset(Activations(rows), np.arange(5) * 10,
                             sample_weight=np.arange(5, dtype=np.float32))
    x, y = PairCollate()(data.__getitems__([3, 0, 4]))
    assert x["x"].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(x["x"], torch.stack([rows[3], rows[0], rows[4]]))
    assert y.tolist() == [30, 0, 40] and x["sample_weight"].tolist() == [3, 0, 4]
    item_x, item_y = PairCollate()([data[i] for i in [3, 0, 4]])  # item by item: the same
    torch.testing.assert_close(item_x["x"], x["x"])
    assert torch.equal(item_y, y)


@pytest.mark.parametrize("lengths", [(2, 4, 3), (3, 3, 3)])
def test_cached_texts_are_padded_and_masked_per_batch(lengths):
    rows = [torch.full((n, 3), float(i + 1)) for i, n in enumerate(lengths)]
    data = ActivationDataset(Activations(rows, TextPreprocessor(None)))
    x, y = PairCollate()(data.__getitems__([2, 0]))
    longest = max(lengths[2], lengths[0])
    assert x.shape == (2, longest, 4) and y.tolist() == [-1, -1]  # the mask comes last
    assert x[1, :, -1].tolist() == [1] * lengths[0] + [0] * (longest - lengths[0])
    assert torch.equal(x[0, :lengths[2], :-1], rows[2])
    pooled = Activations([torch.ones(5), torch.zeros(5)], TextPreprocessor(None))
    assert pooled.batch([1, 0]).shape == (2, 5)


def test_lp_ft_probe_epochs_run_the_backbone_once_per_sample(images, monkeypatch):
    X, y = images
    kw = dict(weights=None, freeze_strategy="lp_ft", freeze_depth=0, max_epochs=4,
              batch_size=8, lr=1e-2, device="cpu", random_state=0)
    calls = _count_stage_work(monkeypatch)
    cached = TransferClassifier("tiny_cnn", **kw).fit(X, y)
    assert cached.cache_used_
    from_pixels = [(training, n) for training, start, n in calls if start == 0]
    # the head warm-up fills the cache with pooled features (+ a one-sample size probe);
    # the two probe epochs train the head on them; the two fine-tuning epochs run it all
    assert sum(n for training, n in from_pixels if not training) == len(X) + 1
    assert sum(n for training, n in from_pixels if training) == 2 * len(X)
    head_only = [n for training, start, n in calls if training and start == 5]
    assert sum(head_only) == 2 * len(X)
    calls.clear()
    plain = TransferClassifier("tiny_cnn", cache=False, **kw).fit(X, y)
    assert not plain.cache_used_
    assert sum(n for training, start, n in calls if training and start == 0) == 4 * len(X)
    _assert_same_training(cached, plain)
    assert cached.module_.start == 0 and len(cached.history) == 4


@pytest.mark.parametrize("freeze_depth", [0, 1])
def test_gradual_unfreezing_trains_each_phase_on_its_cached_prefix(images, monkeypatch,
                                                                  freeze_depth):
    X, y = images
    kw = dict(weights=None, freeze_strategy="gradual", freeze_depth=freeze_depth,
              max_epochs=3, batch_size=8, lr=1e-2, device="cpu", random_state=0,
              head_warmup=0, train_split=ValidSplit(4, stratified=True))
    calls = _count_stage_work(monkeypatch)
    cached = TransferClassifier("tiny_cnn", **kw).fit(X, y)
    # epoch 0: the head alone (pooled features), 1: block 3 opens, 2: block 2 opens
    starts = sorted({start for training, start, n in calls if training})
    assert starts == [2, 3, 5]
    assert cached.cache_used_
    plain = TransferClassifier("tiny_cnn", cache=False, **kw).fit(X, y)
    _assert_same_training(cached, plain)


def test_cache_true_accepts_a_strategy_frozen_for_some_epochs_only(images):
    X, y = images
    clf = TransferClassifier("tiny_cnn", weights=None, freeze_strategy="lp_ft",
                             freeze_depth=0, cache=True, max_epochs=2, device="cpu").fit(X, y)
    assert clf.cache_used_
    with pytest.raises(ValueError, match="persistent data-loader workers"):
        TransferClassifier("tiny_cnn", weights=None, freeze_strategy="lp_ft", freeze_depth=0,
                           cache=True, max_epochs=2, device="cpu",
                           iterator_train__num_workers=1,
                           iterator_train__persistent_workers=True).fit(X, y)


def test_lp_ft_on_image_files_with_decoding_workers_switches_phases(images, tmp_path):
    """Files decode in worker processes by default; the probe epochs' cached input must
    not stay in workers kept from the first epoch."""
    from PIL import Image

    X, y = images
    paths = []
    for i, img in enumerate(X[:24]):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray((img * 255).astype(np.uint8)).save(paths[-1])
    kw = dict(weights=None, freeze_strategy="lp_ft", freeze_depth=0, max_epochs=4,
              batch_size=8, device="cpu", random_state=0, head_warmup=0)
    with_workers = TransferClassifier("tiny_cnn", num_workers=2, **kw).fit(paths, y[:24])
    assert with_workers.cache_used_
    in_process = TransferClassifier("tiny_cnn", num_workers=0, **kw).fit(paths, y[:24])
    _assert_same_training(with_workers, in_process)


@pytest.mark.parametrize("depth", [2, 5])
def test_a_cached_row_does_not_depend_on_what_the_cache_held_before(images, monkeypatch,
                                                                      depth):
    # kernels pick their algorithm by batch size: the same image computed in a batch of
    # 7 and in one of 8 differs in the last float bits, and a fine-tune on a small set
    # amplifies that into a different model. Which samples a fill computes depends on
    # what earlier folds, candidates or fits left in the cache; the rows must not.
    from sktransfer._common import read_input

    X, y = images
    clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth="all", max_epochs=1,
                             batch_size=8, device="cpu", cache=False).fit(X, y)
    fresh = clf._prefix_activations(read_input(X, "tiny_cnn"), depth)
    clear_caches()
    clf._prefix_activations(read_input(X[3:10], "tiny_cnn"), depth)  # a batch of 7
    clf._prefix_activations(read_input(X[:2], "tiny_cnn"), 1)  # a shallower prefix
    pushed = _count_prefix_work(monkeypatch)
    later = clf._prefix_activations(read_input(X, "tiny_cnn"), depth)  # 33 missing
    assert all(torch.equal(a, b) for a, b in zip(fresh, later))
    # every batch was 8 long: the last of the 33 missing samples repeated 7 times
    assert [n for start, stop, n in pushed] == [8] * 5
    assert ACTIVATIONS.hits == 7


def test_rows_computed_at_another_batch_size_are_not_reused(images):
    from sktransfer._common import read_input

    X, y = images
    clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth="all", max_epochs=1,
                             batch_size=8, device="cpu", cache=False).fit(X, y)
    clf._prefix_activations(read_input(X, "tiny_cnn"), 2)
    clf.set_params(batch_size=16)
    clf._prefix_activations(read_input(X, "tiny_cnn"), 2)
    assert ACTIVATIONS.hits == 0
    clf.set_params(batch_size=8)
    clf._prefix_activations(read_input(X, "tiny_cnn"), 2)
    assert ACTIVATIONS.hits == len(X)


def test_a_fit_gives_the_same_model_alone_and_after_other_fits(images):
    # another fit (on a subset, or a grid's folds) fills the cache in other batches than
    # a fit on all the data would: the frozen prefix and the warm-up features must come
    # out the same bits either way, and so must the trained weights
    X, y = images
    params = dict(weights=None, max_epochs=2, batch_size=8, device="cpu", random_state=0)

    def weights(depth):
        clf = TransferClassifier("tiny_cnn", freeze_depth=depth, **params).fit(X, y)
        assert clf.cache_used_ == (depth == 2)
        return [p.detach().clone() for p in clf.module_.parameters()]

    alone = {}
    for depth in (2, 0):
        clear_caches()
        alone[depth] = weights(depth)
    for other in ("subset", "grid"):
        clear_caches()
        if other == "subset":
            TransferClassifier("tiny_cnn", freeze_depth=2, **params).fit(X[3:10], y[3:10])
        else:
            GridSearchCV(TransferClassifier("tiny_cnn", **params), {"freeze_depth": [3, 0]},
                         cv=3, refit=False).fit(X, y)
        for depth, expected in alone.items():
            assert all(torch.equal(a, b) for a, b in zip(weights(depth), expected)), other
