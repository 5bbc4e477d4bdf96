"""The loader policy (``sktransfer/_data/_loader.py``) under the parallel backends users reach for.

``GridSearchCV(n_jobs=2)`` runs fits in joblib's loky worker processes, whose
process-wide start method is ``"loky"``: a ``DataLoader`` left to that default
could not start its decoding workers there. Under joblib's threading backend a
fork from one thread while another holds a lock can hang. Every loader the
library builds names its start method (``worker_context``); ``num_workers="auto"``
starts no workers from a non-main thread. The dask backend is covered in
``test_distributed.py``.
"""

from __future__ import annotations

import threading

import joblib
import numpy as np
import pytest
from PIL import Image
from sklearn.model_selection import GridSearchCV

from sktransfer import FeatureExtractor, TransferClassifier
from sktransfer._data import loader_options, resolve_num_workers, worker_context
from sktransfer._data._inputs import as_input


def _in_thread(func):
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("value", func()))
    thread.start()
    thread.join()
    return out["value"]


def test_workers_start_with_a_named_context_whatever_the_process_default():
    options = loader_options(2, "cpu")
    assert options["multiprocessing_context"].get_start_method() in ("fork", "spawn")
    assert options["persistent_workers"] is True
    assert "persistent_workers" not in loader_options(2, "cpu", persistent=False)
    assert "multiprocessing_context" not in loader_options(0, "cpu")
    # a fork from a thread may inherit another thread's held lock: spawn there
    assert _in_thread(lambda: worker_context().get_start_method()) == "spawn"


def test_auto_starts_no_nested_workers_from_a_thread(tmp_path):
    paths = []
    for i in range(64):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", (8, 8), (i, 0, 0)).save(paths[-1])
    source = as_input(paths)
    assert resolve_num_workers("auto", source, 8) >= min(2, joblib.cpu_count()) or \
        joblib.cpu_count() < 2
    assert _in_thread(lambda: resolve_num_workers("auto", source, 8)) == 0
    assert _in_thread(lambda: resolve_num_workers(2, source, 8)) == 2  # as given


def _inputs(kind, tmp_path, make_images):
    X, y = make_images(24)
    if kind == "array":
        return X, y
    images = [Image.fromarray((x * 255).astype(np.uint8)) for x in X]
    if kind == "pil":
        return images, y
    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / f"{i}.jpg"))
        image.save(paths[-1], quality=95)
    return paths, y


@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["loky", "threading"])
@pytest.mark.parametrize("kind", ["array", "files", "pil"])
def test_parallel_grid_search_on_images(backend, kind, tmp_path, make_images):
    X, y = _inputs(kind, tmp_path, make_images)
    clf = TransferClassifier("tiny_cnn", weights=None, max_epochs=1, batch_size=4,
                             random_state=0)
    with joblib.parallel_backend(backend, n_jobs=2):
        search = GridSearchCV(clf, {"freeze_depth": [1, "all"]}, cv=2, n_jobs=2,
                              error_score="raise").fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.predict(X[:3]).shape == (3,)


@pytest.mark.timeout(300)
def test_explicit_workers_inside_loky_and_thread_workers(tmp_path, make_images):
    """An explicit worker count is honoured in both: forked inside loky's processes,
    spawned from a thread."""
    X, y = _inputs("files", tmp_path, make_images)
    for backend in ("loky", "threading"):
        clf = TransferClassifier("tiny_cnn", weights=None, max_epochs=1, batch_size=4,
                                 random_state=0, num_workers=1)
        with joblib.parallel_backend(backend, n_jobs=2):
            search = GridSearchCV(clf, {"freeze_depth": [1, "all"]}, cv=2, n_jobs=2,
                                  error_score="raise").fit(X, y)
        assert np.isfinite(search.cv_results_["mean_test_score"]).all()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_parallel_feature_extraction_on_files(backend, tmp_path, make_images):
    X, _ = _inputs("files", tmp_path, make_images)
    expected = FeatureExtractor("tiny_cnn", weights=None, batch_size=4).fit_transform(X)

    def features(part):
        return FeatureExtractor("tiny_cnn", weights=None, batch_size=4).fit_transform(part)

    parts = joblib.Parallel(n_jobs=2, backend=backend)(
        joblib.delayed(features)(X[i::2]) for i in range(2))
    np.testing.assert_allclose(parts[0], expected[0::2], atol=1e-5)
    np.testing.assert_allclose(parts[1], expected[1::2], atol=1e-5)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_parallel_grid_search_on_texts(backend):
    pytest.importorskip("sktransfer_transformers")
    texts = ["Return the sum of the array elements.", "Open an image file.",
             "Split a string by a pattern.", "Fit the model to the data.",
             "Add two arrays element-wise.", "Save an image to a file.",
             "Join strings with a separator.", "Predict class labels for samples."] * 2
    y = np.array(["numpy", "PIL", "stdlib", "sklearn"] * 4)
    clf = TransferClassifier("minilm_l6", max_epochs=1, batch_size=8, random_state=0)
    with joblib.parallel_backend(backend, n_jobs=2):
        search = GridSearchCV(clf, {"freeze_depth": ["all", 5]}, cv=2, n_jobs=2,
                              error_score="raise").fit(texts, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
