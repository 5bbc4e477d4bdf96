"""Frozen-prefix caching: valid, equal to the uncached path, reused across candidates/folds."""

import os

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from sktransfer import TransferClassifier
from sktransfer._cache import ACTIVATIONS, clear_caches


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
    GridSearchCV(TransferClassifier("tiny_cnn", weights=None, max_epochs=2, device="cpu",
                                    random_state=0, lr=1e-2),
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
    assert b"_ActivationInput" not in blob
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
    assert from_pixels == 10  # only the samples the fit never saw, once, then stored
    assert all(start == 3 for start, stop, n in pushed if stop == clf.module_.n_blocks + 1)
    pushed.clear()
    clf.set_params(cache=False)  # the plain path: every sample through the whole network
    np.testing.assert_allclose(clf.predict_proba(X), proba, atol=1e-5)
    np.testing.assert_allclose(clf.transform(X), features, atol=1e-5)
    assert sum(n for start, stop, n in pushed if start == 0) == 2 * len(X)


def test_prediction_after_changing_frozen_weights_does_not_serve_stale_rows(images):
    import torch

    X, y = images
    clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth=2, max_epochs=1,
                             device="cpu", random_state=0).fit(X, y)
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
    GridSearchCV(TransferClassifier("tiny_cnn", weights=None, max_epochs=1, device="cpu",
                                    random_state=0),
                 {"freeze_depth": [2, "all"]}, cv=3, refit=False).fit(X, y)
    n_stages = 5  # tiny_cnn: 4 blocks and the pool
    # no fold is scored by running its samples through the whole network from pixels
    assert not [n for start, stop, n in pushed if start == 0 and stop == n_stages and n > 1]
    assert sum(n for start, stop, n in pushed if start == 0 and n > 1) == len(X)
