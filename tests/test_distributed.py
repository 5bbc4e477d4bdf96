"""Scale out: a grid search over ``freeze_depth`` on a real dask.distributed cluster.

The cluster is two worker *processes* on 127.0.0.1, started and stopped by
this module, so everything an estimator carries really crosses a process
boundary (pickled by joblib's dask backend) and the fits run elsewhere.
"""

from __future__ import annotations

import os
import pickle
import time

import joblib
import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from sklearn.model_selection import GridSearchCV, StratifiedKFold  # noqa: E402

from sktransfer import FeatureExtractor, TransferClassifier  # noqa: E402
from sktransfer._cache import ACTIVATIONS  # noqa: E402

GRID = {"freeze_depth": [0, 2, "all"]}
TIMINGS: dict[str, float] = {}


def _clf():
    return TransferClassifier("tiny_cnn", weights=None, max_epochs=2, lr=1e-2, batch_size=16,
                              random_state=0)


@pytest.fixture(scope="module")
def data(make_images):
    return make_images(48)


@pytest.fixture(scope="module")
def client():
    start = time.perf_counter()
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=40,
        # one torch thread per worker: two workers already fill two cores
        env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    client = distributed.Client(cluster, timeout="60s")
    TIMINGS["startup"] = time.perf_counter() - start
    pids = set(client.run(os.getpid).values())
    try:
        yield client
    finally:
        start = time.perf_counter()
        client.close(timeout=30)
        cluster.close(timeout=30)
        TIMINGS["shutdown"] = time.perf_counter() - start
        _report()
    # shutting down is bounded and leaves no worker process behind
    assert TIMINGS["shutdown"] < 40
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie that is only waiting to be reaped is gone for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _report():
    line = ", ".join(f"{k} {v:.1f}s" for k, v in TIMINGS.items())
    print(f"\n[test_distributed] {line}")


@pytest.mark.timeout(300)
def test_grid_search_over_freeze_depth_runs_on_the_cluster(client, data):
    X, y = data
    main_pid = os.getpid()
    worker_pids = set(client.run(os.getpid).values())

    def fitted_in(estimator, X_, y_):  # a "score" that tells where the fit ran
        return os.getpid()

    cv = StratifiedKFold(2, shuffle=True, random_state=0)
    search = GridSearchCV(_clf(), GRID, cv=cv, n_jobs=-1, refit="accuracy",
                          scoring={"accuracy": "accuracy", "pid": fitted_in})
    start = time.perf_counter()
    with joblib.parallel_backend("dask"):
        search.fit(X, y)
    TIMINGS["grid search"] = time.perf_counter() - start

    pids = {int(search.cv_results_[f"split{i}_test_pid"][c])
            for i in range(2) for c in range(len(GRID["freeze_depth"]))}
    assert pids <= worker_pids and main_pid not in pids
    assert len(pids) == 2  # both workers took candidates

    # the same search in this process gives the same scores: nothing is lost in transit
    local = GridSearchCV(_clf(), GRID, cv=cv, n_jobs=1).fit(X, y)
    np.testing.assert_allclose(search.cv_results_["mean_test_accuracy"],
                               local.cv_results_["mean_test_score"], atol=1e-12)
    assert search.best_params_ == local.best_params_
    assert set(search.predict(X[:4])) <= {"cat", "dog"}


@pytest.mark.timeout(300)
def test_pipeline_with_feature_extractor_on_the_cluster(client, data):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    X, y = data
    pipe = Pipeline([("features", FeatureExtractor("tiny_cnn", weights=None, random_state=0)),
                     ("clf", LogisticRegression(max_iter=200))])
    search = GridSearchCV(pipe, {"features__layer": [1, None], "clf__C": [0.1, 1.0]}, cv=2,
                          n_jobs=-1)
    start = time.perf_counter()
    with joblib.parallel_backend("dask"):
        search.fit(X, y)
    TIMINGS["pipeline search"] = time.perf_counter() - start
    assert search.best_score_ > 0.6


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["files", "pil"])
def test_grid_search_on_image_files_and_pil_on_the_cluster(client, data, kind, tmp_path):
    """dask runs tasks in worker threads: the loaders there start no nested workers and
    fold no BatchNorm (see _data/_loader.py, _bn_fold.py), and the search completes."""
    from PIL import Image

    X, y = data
    images = [Image.fromarray((x * 255).astype(np.uint8)) for x in X]
    if kind == "files":
        for i, image in enumerate(images):
            image.save(tmp_path / f"{i}.png")
        images = [str(tmp_path / f"{i}.png") for i in range(len(images))]
    search = GridSearchCV(_clf(), GRID, cv=2, n_jobs=-1, error_score="raise")
    with joblib.parallel_backend("dask"):
        search.fit(images, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_estimators_ship_to_workers_cheaply(data):
    X, y = data
    _clf().set_params(freeze_depth=2, max_epochs=1).fit(X, y)
    assert len(ACTIVATIONS) > 0  # this process now holds cached activations...
    # ...which are process state, not estimator state: what goes to a worker stays tiny
    for estimator in (_clf(), FeatureExtractor("tiny_cnn", weights=None)):
        blob = pickle.dumps(estimator)
        assert len(blob) < 4_000, type(estimator).__name__
        assert b"LRUCache" not in blob
    search = GridSearchCV(_clf(), GRID, cv=2)
    assert len(pickle.dumps(search)) < 6_000
