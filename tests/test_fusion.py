"""FeatureExtractor(layer=[...]): features fused across blocks, from one forward pass."""

import pickle

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sktransfer import FeatureExtractor

KW = dict(weights=None, device="cpu", random_state=0, cache=False)


@pytest.fixture
def uint8_images():
    rng = np.random.RandomState(0)
    X = rng.randint(0, 255, (24, 32, 32, 3), dtype=np.uint8)
    y = np.array([0, 1] * 12)
    X[y == 1, :, :, 2] = 250
    return X, y


@pytest.mark.parametrize("layers, pooling", [
    ([1, -1], "avg"), (("stage2", "stage3"), "avg"), ([3, "stage1", 0], "max"),
    ([-1], "catavgmax")])
def test_fused_equals_concatenated_single_layers(uint8_images, layers, pooling):
    X, _ = uint8_images
    fused = FeatureExtractor("tiny_cnn", layer=layers, pooling=pooling, **KW).fit(X)
    singles = [FeatureExtractor("tiny_cnn", layer=layer, pooling=pooling, **KW).fit(X)
               for layer in layers]
    expected = np.concatenate([fe.transform(X) for fe in singles], axis=1)
    out = fused.transform(X)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    assert fused.n_features_out_ == out.shape[1] == sum(fe.n_features_out_ for fe in singles)
    names = fused.get_feature_names_out()
    assert len(names) == out.shape[1]
    blocks = fused.backbone_.block_names
    start = 0
    for layer, fe in zip(layers, singles):  # each block's columns carry its name, in order
        block = layer if isinstance(layer, str) else blocks[layer]
        width = fe.n_features_out_
        assert names[start] == f"{block}_{pooling}_0"
        assert names[start + width - 1] == f"{block}_{pooling}_{width - 1}"
        start += width


def test_each_block_runs_once_per_batch(uint8_images):
    X, _ = uint8_images
    fe = FeatureExtractor("tiny_cnn", layer=[0, 1, 3], batch_size=10, **KW).fit(X)
    calls = {}
    handles = [block.register_forward_hook(
        lambda module, args, out, i=i: calls.__setitem__(i, calls.get(i, 0) + 1))
        for i, block in enumerate(fe.backbone_.blocks)]
    try:
        fe.transform(X)
    finally:
        for handle in handles:
            handle.remove()
    assert calls == {0: 3, 1: 3, 2: 3, 3: 3}  # 24 samples in batches of 10: 3 passes


def test_layers_are_grid_searchable_and_pickle(uint8_images):
    X, y = uint8_images
    pipe = make_pipeline(FeatureExtractor("tiny_cnn", **KW), LogisticRegression(max_iter=300))
    grid = {"featureextractor__layer": [-1, [-2, -1], ("stage1", "stage2", "stage3")]}
    search = GridSearchCV(pipe, grid, cv=2, error_score="raise").fit(X, y)
    assert len(search.cv_results_["params"]) == 3
    fe = FeatureExtractor("tiny_cnn", layer=[-2, -1], **KW).fit(X)
    again = pickle.loads(pickle.dumps(fe))
    np.testing.assert_array_equal(again.transform(X), fe.transform(X))
    assert again.get_feature_names_out().tolist() == fe.get_feature_names_out().tolist()


def test_skops_round_trip_of_fused_layers(uint8_images, tmp_path):
    sio = pytest.importorskip("skops.io")
    X, _ = uint8_images
    fe = FeatureExtractor("tiny_cnn", layer=[1, 3], **KW).fit(X)
    sio.dump(fe, tmp_path / "fe.skops")
    loaded = sio.load(tmp_path / "fe.skops",
                      trusted=sio.get_untrusted_types(file=tmp_path / "fe.skops"))
    np.testing.assert_array_equal(loaded.transform(X), fe.transform(X))


@pytest.mark.parametrize("layer, match", [
    ([], "names no block"), ([1, -3], "names a block twice"), ([0, "nope"], "not a block"),
    ([0, 1.5], "must be None, an int")])
def test_bad_layer_lists_are_clear_errors(uint8_images, layer, match):
    X, _ = uint8_images
    with pytest.raises((ValueError, TypeError), match=match):
        FeatureExtractor("tiny_cnn", layer=layer, **KW).fit(X)
