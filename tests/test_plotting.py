"""sktransfer.plotting: figures from a grid search and from a fitted classifier."""

import sys

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from skorch.dataset import ValidSplit

from sktransfer import TransferClassifier
from sktransfer.plotting import plot_freeze_depth, plot_history

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.figure import Figure  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _fake_results():
    params, means = [], []
    for strategy in ["depth", "lp_ft"]:
        for depth in ["all", 0, -1, 2]:
            params.append({"freeze_depth": depth, "freeze_strategy": strategy})
            means.append(0.5 + 0.1 * len(params) / 8)
    return {"params": params, "mean_test_score": np.array(means),
            "std_test_score": np.full(len(means), 0.05)}


@pytest.fixture(scope="module")
def search(make_images):
    X, y = make_images(24, labels=("a", "b"))
    clf = TransferClassifier("tiny_cnn", weights=None, max_epochs=2, random_state=0)
    return GridSearchCV(clf, {"freeze_depth": [0, 2, "all"]}, cv=2).fit(X, y), X, y


def test_plot_freeze_depth_from_search(search, tmp_path):
    fig = plot_freeze_depth(search[0])
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "2", "all"]
    assert "freeze_depth" in ax.get_xlabel()
    fig.savefig(tmp_path / "fd.png")
    data = (tmp_path / "fd.png").read_bytes()
    assert data.startswith(PNG) and len(data) > 5000


def test_plot_freeze_depth_one_line_per_strategy():
    fig = plot_freeze_depth(_fake_results())
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["freeze_strategy=depth", "freeze_strategy=lp_ft", "best"]
    # ints in stage order, negatives (from the top) after them, "all" last
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "2", "-1", "all"]
    best = ax.get_lines()[-1]
    assert best.get_ydata()[0] == pytest.approx(0.6)


def test_plot_freeze_depth_pipeline_prefix_and_axes():
    results = _fake_results()
    results["params"] = [{f"transferclassifier__{k}": v for k, v in p.items()}
                         for p in results["params"]]
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_freeze_depth(results, ax=ax) is fig


def test_plot_freeze_depth_errors(search):
    with pytest.raises(ValueError, match="did not vary 'image_size'"):
        plot_freeze_depth(search[0], param="image_size")
    with pytest.raises(TypeError, match="fitted GridSearchCV"):
        plot_freeze_depth(object())


def test_plot_history_with_validation(search, tmp_path):
    _, X, y = search
    clf = TransferClassifier("tiny_cnn", weights=None, max_epochs=3, random_state=0,
                             train_split=ValidSplit(4, stratified=True)).fit(X, y)
    fig = plot_history(clf)
    ax, twin = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["train loss", "validation loss"]
    assert list(ax.get_lines()[0].get_xdata()) == [1, 2, 3]
    assert twin.get_lines()[0].get_label() == "validation accuracy"
    assert "freeze_depth=all" in ax.get_title()
    fig.savefig(tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes().startswith(PNG)


def test_plot_history_train_only_and_history_object(search):
    best = search[0].best_estimator_
    fig = plot_history(best.history)
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["train loss"]
    assert len(fig.axes) == 1


def test_plot_history_unfitted():
    with pytest.raises(ValueError, match="fit"):
        plot_history(TransferClassifier("tiny_cnn", weights=None))


def test_plotting_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'sktransfer\[plot\]'"):
        plot_freeze_depth(_fake_results())


def test_does_not_touch_pyplot_state():
    before = sys.modules.get("matplotlib.pyplot")
    plot_freeze_depth(_fake_results())
    if before is None:
        assert "matplotlib.pyplot" not in sys.modules


def _band_limits(fig):
    ys = np.concatenate([path.vertices[:, 1] for c in fig.axes[0].collections
                         for path in c.get_paths()])
    return ys.min(), ys.max()


def test_accuracy_band_stays_within_zero_and_one(search):
    import copy

    grid = copy.copy(search[0])  # scoring=None on a classifier: accuracy
    grid.cv_results_ = dict(grid.cv_results_, mean_test_score=np.array([0.95, 0.9, 0.08]),
                            std_test_score=np.array([0.2, 0.05, 0.2]))
    low, high = _band_limits(plot_freeze_depth(grid))
    assert high <= 1.0 and low >= 0.0
    assert high == pytest.approx(1.0) and low == pytest.approx(0.0)  # clipped, not dropped
    results = dict(_fake_results(), scoring="roc_auc")
    results["std_test_score"] = np.full(8, 0.6)
    assert _band_limits(plot_freeze_depth(results))[1] <= 1.0
    unbounded = dict(_fake_results(), std_test_score=np.full(8, 0.6))  # scorer unknown
    assert _band_limits(plot_freeze_depth(unbounded))[1] > 1.0
    assert _band_limits(plot_freeze_depth(unbounded, score_range=(0, 1)))[1] == 1.0


def test_band_of_a_scorer_object_or_an_own_function(search):
    """A scorer object from get_scorer is known by name; a function of one's own (the
    demo's, which drives a progress bar) is clipped where ``score_range`` says."""
    import copy

    from sklearn.metrics import get_scorer

    grid = copy.copy(search[0])
    grid.cv_results_ = dict(grid.cv_results_, mean_test_score=np.array([0.95, 0.9, 0.08]),
                            std_test_score=np.array([0.2, 0.05, 0.2]))
    grid.scoring = get_scorer("accuracy")
    assert _band_limits(plot_freeze_depth(grid)) == pytest.approx((0.0, 1.0))
    grid.scoring = get_scorer("neg_log_loss")
    assert _band_limits(plot_freeze_depth(grid))[1] == pytest.approx(0.0)
    grid.scoring = lambda est, X, y: 0.5
    assert _band_limits(plot_freeze_depth(grid))[1] > 1.0
    assert _band_limits(plot_freeze_depth(grid, score_range=(0, 1))) == pytest.approx((0, 1))
    with pytest.raises(ValueError, match="low < high"):
        plot_freeze_depth(grid, score_range=(1, 0))


def test_learning_curve_has_whole_epochs_and_a_title_inside_the_figure(search):
    import copy

    clf = copy.copy(search[0].best_estimator_)
    clf.backbone = "hf/" + "a_rather_long_checkpoint_folder_name/" * 3
    clf.freeze_strategy = "lp_ft"
    fig = plot_history(clf)
    fig.canvas.draw()
    ax = fig.axes[0]
    visible = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert visible == [1, 2]
    box = ax.title.get_window_extent(fig.canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height
    assert "freeze_strategy=lp_ft" in ax.get_title()


def test_plot_freeze_depth_of_several_scores_and_the_chosen_candidate():
    from types import SimpleNamespace

    results = {"params": [{"freeze_depth": d} for d in ["all", -1, 0]],
               "mean_test_accuracy": np.array([0.9, 0.95, 0.97]),
               "std_test_accuracy": np.full(3, 0.3),
               "mean_test_brier": np.array([-0.2, -0.1, -0.05]),
               "std_test_brier": np.full(3, 0.3)}
    # TransferClassifierCV's default scoring: accuracy first, the chosen candidate ringed
    chosen = SimpleNamespace(cv_results_=results, best_index_=0, scoring=None)
    fig = plot_freeze_depth(chosen)
    assert fig.axes[0].get_lines()[-1].get_ydata()[0] == pytest.approx(0.9)
    assert "accuracy" in fig.axes[0].get_ylabel()
    assert _band_limits(fig)[1] == pytest.approx(1.0)  # accuracy's band clipped to 1
    fig = plot_freeze_depth(results, scorer="brier")
    assert fig.axes[0].get_lines()[-1].get_ydata()[0] == pytest.approx(-0.05)  # best mean
    assert _band_limits(fig)[1] == pytest.approx(0.0)  # minus a Brier score is at most 0
    with pytest.raises(ValueError, match=r"no mean_test_f1; its scores are \['accuracy'"):
        plot_freeze_depth(results, scorer="f1")
