"""FeatureExtractor: layers, pooling, caches, sklearn plumbing."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sktransfer import FeatureExtractor
from sktransfer._extractor import FEATURES


@pytest.fixture
def uint8_images():
    rng = np.random.RandomState(0)
    X = rng.randint(0, 255, (24, 32, 32, 3), dtype=np.uint8)
    y = np.array([0, 1] * 12)
    X[y == 1, :, :, 2] = 250
    return X, y


def test_transform_shape_dtype_and_names(uint8_images):
    X, _ = uint8_images
    fe = FeatureExtractor("tiny_cnn", weights=None, device="cpu").fit(X)
    out = fe.transform(X)
    assert out.shape == (24, 64) and out.dtype == np.float32
    assert fe.n_features_out_ == 64
    names = fe.get_feature_names_out()
    assert len(names) == 64 and names[0] == "featureextractor0"


@pytest.mark.parametrize("layer,pooling,width", [
    (None, "avg", 512), ("layer2", "avg", 128), (1, "max", 64), (-2, "avgmax", 256),
    ("layer3", "catavgmax", 512), (0, "avg", 64)])
def test_any_block_any_pooling(uint8_images, layer, pooling, width):
    X, _ = uint8_images
    fe = FeatureExtractor("resnet18", weights=None, layer=layer, pooling=pooling, image_size=32,
                          device="cpu").fit(X[:4])
    assert fe.transform(X[:4]).shape == (4, width)


def test_intermediate_layers_of_token_and_channels_last_backbones(uint8_images):
    X, _ = uint8_images
    vit = FeatureExtractor("vit_b_16", weights=None, layer=1, image_size=32, device="cpu").fit(X[:2])
    assert vit.transform(X[:2]).shape == (2, 768)
    swin = FeatureExtractor("swin_t", weights=None, layer=0, image_size=32, device="cpu").fit(X[:2])
    assert swin.transform(X[:2]).shape == (2, 96)


def test_bad_layer_and_pooling(uint8_images):
    X, _ = uint8_images
    with pytest.raises(ValueError, match=r"layer='layer9' is not a block of 'resnet18'; its "
                                         r"blocks are \['stem', 'layer1'"):
        FeatureExtractor("resnet18", weights=None, layer="layer9", device="cpu").fit(X)
    with pytest.raises(ValueError, match="layer=7 is out of range"):
        FeatureExtractor("tiny_cnn", weights=None, layer=7, device="cpu").fit(X)
    with pytest.raises(ValueError, match="pooling='median'"):
        FeatureExtractor("tiny_cnn", weights=None, pooling="median", device="cpu").fit(X)
    with pytest.raises(ValueError, match="unknown backbone 'resnt18'.*did you mean 'resnet18'"):
        FeatureExtractor("resnt18", weights=None).fit(X)


def test_not_fitted(uint8_images):
    with pytest.raises(NotFittedError):
        FeatureExtractor("tiny_cnn", weights=None).transform(uint8_images[0])


def test_in_memory_cache_makes_repeated_transform_free(uint8_images, monkeypatch):
    X, _ = uint8_images
    FEATURES.clear()
    fe = FeatureExtractor("tiny_cnn", weights=None, device="cpu").fit(X)
    first = fe.transform(X)
    computed = []  # samples pushed through the network
    real = type(fe)._run
    monkeypatch.setattr(type(fe), "_run", lambda self, s: computed.append(len(s)) or real(self, s))
    second = fe.transform(X)
    np.testing.assert_array_equal(first, second)
    assert computed == []
    second[:] = 0  # the caller's copy, not the cache's
    np.testing.assert_array_equal(fe.transform(X), first)
    fe.transform(X[:5])
    assert computed == [5]
    clone(fe).fit(X).transform(X)  # same model, same data: only fit's 1-sample probe runs
    assert computed == [5, 1]
    fe.set_params(cache=False).transform(X)
    assert computed == [5, 1, 24]


def test_disk_cache_with_memory(uint8_images, tmp_path, monkeypatch):
    X, _ = uint8_images
    FEATURES.clear()
    fe = FeatureExtractor("tiny_cnn", weights=None, device="cpu", cache=False,
                          memory=str(tmp_path)).fit(X)
    first = fe.transform(X)
    computed = []
    real = type(fe)._run
    monkeypatch.setattr(type(fe), "_run", lambda self, s: computed.append(len(s)) or real(self, s))
    again = FeatureExtractor("tiny_cnn", weights=None, device="cpu", cache=False,
                             memory=str(tmp_path)).fit(X).transform(X)
    np.testing.assert_array_equal(first, again)
    assert computed == []  # the probe in fit and the 24 samples all came from disk
    assert any(tmp_path.rglob("*.pkl"))


def test_pipeline_grid_search_and_pickle(uint8_images):
    X, y = uint8_images
    pipe = make_pipeline(FeatureExtractor("tiny_cnn", weights=None, device="cpu"),
                         LogisticRegression(max_iter=500))
    search = GridSearchCV(pipe, {"logisticregression__C": [0.01, 1.0],
                                 "featureextractor__pooling": ["avg", "max"]}, cv=3).fit(X, y)
    assert search.best_score_ > 0.6
    fitted = search.best_estimator_
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict_proba(X), fitted.predict_proba(X))
    fe = fitted[0]
    assert fe.device == "cpu" and fe.extractor_ is not None


def test_random_weights_are_seeded(uint8_images):
    X, _ = uint8_images
    a = FeatureExtractor("tiny_cnn", weights=None, random_state=1, cache=False).fit_transform(X)
    b = FeatureExtractor("tiny_cnn", weights=None, random_state=1, cache=False).fit_transform(X)
    c = FeatureExtractor("tiny_cnn", weights=None, random_state=2, cache=False).fit_transform(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_vectors_with_mlp_backbone():
    X = np.random.RandomState(0).rand(10, 6)
    fe = FeatureExtractor("mlp", weights=None).fit(X)
    assert fe.transform(X).shape == (10, 32) and fe.n_features_in_ == 6
    with pytest.raises(ValueError, match="X has 5 features, but FeatureExtractor is expecting 6"):
        fe.transform(X[:, :5])
