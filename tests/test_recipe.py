"""The fine-tuning recipe: frozen norms, head warm-up, lr groups, decay, schedule."""

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sktransfer import TransferClassifier, get_backbone, list_freezers
from sktransfer.freezing import DiscriminativeLR

FAST = dict(max_epochs=2, batch_size=20, lr=5e-2, device="cpu", random_state=0)


def _running_stats(module):
    return {n: b.detach().clone() for n, b in module.named_buffers() if "running" in n}


def _fit(images, weights, **kw):
    X, y = images
    return TransferClassifier("tiny_cnn", weights=weights, **{**FAST, **kw}).fit(X, y)


@pytest.mark.parametrize("strategy", list_freezers())
def test_default_fit_keeps_batchnorm_statistics_in_trainable_blocks(images, tiny_weights,
                                                                    strategy):
    path, state = tiny_weights
    clf = _fit(images, path, freeze_depth=0, freeze_strategy=strategy, cache=False,
               max_epochs=3)
    after = _running_stats(clf.module_.blocks)
    assert after, "tiny_cnn has BatchNorm layers"
    for name, value in after.items():
        assert torch.equal(value, state[f"blocks.{name}"]), f"{strategy}: {name} moved"
    assert clf.module_.training is False or all(
        not m.training for m in clf.module_.blocks.modules()
        if isinstance(m, torch.nn.BatchNorm2d))


def test_norm_mode_frozen_still_trains_affine_params_and_train_mode_updates_stats(
        images, tiny_weights):
    path, state = tiny_weights
    frozen = _fit(images, path, freeze_depth=0, cache=False)
    bn_weight = "blocks.3.1.weight"
    assert not torch.equal(dict(frozen.module_.named_parameters())[bn_weight], state[bn_weight])
    train = _fit(images, path, freeze_depth=0, cache=False, norm_mode="train")
    moved = [n for n, v in _running_stats(train.module_.blocks).items()
             if not torch.equal(v, state[f"blocks.{n}"])]
    assert moved, "norm_mode='train' should update running statistics"


def test_head_and_backbone_lr_groups_and_no_decay_on_norm_and_bias(images):
    clf = _fit(images, None, freeze_depth=1, backbone_lr_scale=0.1, lr=0.01,
               optimizer__weight_decay=0.05)
    head_ids = {id(p) for p in clf.module_.head.parameters()}
    seen = set()
    for group in clf.optimizer_.param_groups:
        for p in group["params"]:
            seen.add(id(p))
            is_head = id(p) in head_ids
            assert group["lr"] == pytest.approx(0.01 if is_head else 0.001)
            assert group["lr_scale"] == pytest.approx(1.0 if is_head else 0.1)
            assert group["weight_decay"] == (0.05 if p.ndim > 1 else 0.0)
    trainable = {id(p) for p in clf.module_.parameters() if p.requires_grad}
    assert seen == trainable
    clf.set_params(lr=0.02)
    assert sorted({round(g["lr"], 6) for g in clf.optimizer_.param_groups}) == [0.002, 0.02]


@pytest.mark.parametrize("kwargs, fused", [
    ({}, True),  # default AdamW: torch's fused kernel
    ({"optimizer": torch.optim.Adam}, True),
    ({"optimizer__foreach": True}, None),  # the user chose an implementation: kept
    ({"optimizer__fused": False}, False),
    ({"optimizer": torch.optim.SGD}, None),  # other optimizers untouched
])
def test_adam_and_adamw_run_fused_unless_the_user_chose(images, kwargs, fused):
    clf = _fit(images, None, freeze_depth=1, max_epochs=1, **kwargs)
    assert {g.get("fused") for g in clf.optimizer_.param_groups} == {fused}
    assert all(torch.isfinite(p).all() for p in clf.module_.parameters())


def test_fused_adamw_matches_the_per_parameter_loop(images):
    # a converged head (C=1): gradients well above Adam's eps, where two implementations
    # of the same update agree to float rounding (with the soft head of "auto" and lr
    # 5e-2 the tiny network's first steps amplify rounding differences)
    fused = _fit(images, None, freeze_depth=1, cache=False, head_warmup_C=1.0)
    loop = _fit(images, None, freeze_depth=1, cache=False, head_warmup_C=1.0,
                optimizer__fused=False)
    for (name, a), b in zip(fused.module_.named_parameters(), loop.module_.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


class _RecordLR(Callback):
    def initialize(self):
        self.lrs = []
        return self

    def on_batch_begin(self, net, training=False, **kwargs):
        if training:
            self.lrs.append(net.optimizer_.param_groups[0]["lr"])


def test_cosine_schedule_warms_up_then_decays_per_batch(images):
    record = _RecordLR()
    clf = _fit(images, None, freeze_depth=1, max_epochs=5, batch_size=4, lr=0.1,
               callbacks=[("record", record)])
    lrs = dict(clf.callbacks_)["record"].lrs
    assert len(lrs) == 50
    peak = int(np.argmax(lrs))
    assert 0 < peak <= 6 and lrs[0] < lrs[peak]
    assert max(lrs) <= 0.1 + 1e-9 and lrs[-1] < 0.01
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:]))
    assert clf.optimizer_.param_groups[0]["lr"] == pytest.approx(0.1)  # nominal after fit
    constant = _fit(images, None, freeze_depth=1, lr_schedule="constant",
                    callbacks=[("record", _RecordLR())])
    assert dict(constant.callbacks_)["record"].lrs == pytest.approx([0.05] * 4)


def test_head_warmup_lowers_the_first_epoch_loss_and_reuses_the_cache(images):
    from sktransfer._cache import clear_caches

    clear_caches()
    calls = []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda module, args, out: calls.append((module, len(args[0]))))
    try:
        warm = _fit(images, None, freeze_depth=2, head_warmup=30, lr=1e-3)
    finally:
        hook.remove()
    stem_samples = sum(n for m, n in calls if m is warm.module_.blocks[0])
    assert stem_samples == len(images[0]) + 1  # each sample once, plus the size probe
    cold = _fit(images, None, freeze_depth=2, head_warmup=0, lr=1e-3)
    assert warm.head_warmup_loss_ is not None and cold.head_warmup_loss_ is None
    assert warm.history[0, "train_loss"] < cold.history[0, "train_loss"]


def test_head_warmup_only_on_a_fresh_network(images):
    clf = _fit(images, None, freeze_depth=2, warm_start=True, head_warmup=5)
    head = [p.detach().clone() for p in clf.module_.head.parameters()]
    clf.set_params(max_epochs=1, lr=1e-12, lr_schedule="constant")
    clf.fit(*images)  # warm start: no second warm-up, and lr ~ 0 leaves the head alone
    for before, p in zip(head, clf.module_.head.parameters()):
        torch.testing.assert_close(p.detach(), before, rtol=0, atol=1e-6)


def test_label_smoothing_reaches_the_criterion(images):
    clf = _fit(images, None, freeze_depth="all", label_smoothing=0.2)
    assert clf.criterion_.label_smoothing == 0.2
    with pytest.raises(ValueError, match="takes no label_smoothing"):
        _fit(images, None, criterion=torch.nn.MultiMarginLoss, label_smoothing=0.1)
    # the default (0) works with any criterion
    assert _fit(images, None, freeze_depth="all", criterion=torch.nn.MultiMarginLoss,
                head_warmup=0).criterion_.margin == 1


@pytest.mark.parametrize("param, value, match", [
    ("norm_mode", "eval", r"norm_mode='eval'\): norm_mode must be one of \['frozen', 'train'\]"),
    ("lr_schedule", "step", "lr_schedule='step'"),
    ("head_warmup", -1, r"head_warmup must be an int in \[0"),
    ("head_warmup", 2.5, "head_warmup must be an int"),
    ("backbone_lr_scale", -0.1, "backbone_lr_scale"),
    ("lr_warmup", 1.0, r"lr_warmup must be a number in \[0, 1\)"),
    ("label_smoothing", float("nan"), "label_smoothing"),
])
def test_recipe_params_are_validated_in_fit(images, param, value, match):
    clf = TransferClassifier("tiny_cnn", weights=None, **FAST).set_params(**{param: value})
    with pytest.raises(ValueError, match=match):
        clf.fit(*images)


def test_strategy_options_are_validated_for_strategy_objects(images):
    strategy = DiscriminativeLR()
    with pytest.raises(ValueError, match=r"decay must be in \(0, 1\], got 5.0"):
        _fit(images, None, freeze_depth=1, freeze_strategy=strategy,
             freeze_strategy__decay=5.0)
    with pytest.raises(ValueError, match="has no option 'rate'"):
        _fit(images, None, freeze_depth=1, freeze_strategy=strategy, freeze_strategy__rate=2)
    clf = _fit(images, None, freeze_depth=1, freeze_strategy=strategy,
               freeze_strategy__decay=0.25)
    assert clf.freezer_.decay == 0.25 and strategy.decay == 0.5  # the user's object untouched


def test_gradual_trains_resnet18_top_block_in_the_second_epoch(tmp_path):
    # resnet18's stages: stem, layer1..layer4, pool (no parameters): epoch 0 trains the
    # head, epoch 1 must open layer4 rather than spend the epoch on the empty pool
    start = get_backbone("resnet18", weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save({f"blocks.{i}.{k}": v for i, b in enumerate(start.blocks)
                for k, v in b.state_dict().items()}, path)
    X = np.random.RandomState(0).rand(8, 32, 32, 3).astype(np.float32)
    y = np.array([0, 1] * 4)
    clf = TransferClassifier("resnet18", weights=str(path), freeze_depth=0,
                             freeze_strategy="gradual", image_size=32, cache=False,
                             **{**FAST, "batch_size": 8}).fit(X, y)

    def moved(i):
        return any(not torch.equal(p, q) for p, q in zip(clf.module_.blocks[i].parameters(),
                                                       start.blocks[i].parameters()))

    assert moved(4)
    assert not any(moved(i) for i in range(4))


def test_recipe_params_grid_search(images):
    X, y = images
    search = GridSearchCV(TransferClassifier("tiny_cnn", weights=None, freeze_depth=1, **FAST),
                          {"norm_mode": ["frozen", "train"], "backbone_lr_scale": [0.1, 1.0]},
                          cv=2).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert clone(search.best_estimator_).get_params()["norm_mode"] in ("frozen", "train")


def test_head_warmup_is_the_logistic_regression_probe(tiny_weights):
    from sklearn.linear_model import LogisticRegression

    from sktransfer import FeatureExtractor

    rng = np.random.RandomState(0)
    y = np.repeat(["a", "b", "c"], 10)
    X = rng.rand(30, 32, 32, 3).astype(np.float32) * 0.5
    X[y == "a", :, :, 0] += 0.5
    X[y == "b", :, :, 1] += 0.5
    path = str(tiny_weights[0])
    clf = TransferClassifier("tiny_cnn", weights=path, freeze_depth="all", max_epochs=0,
                             head_warmup=500, head_warmup_C=0.5, random_state=0).fit(X, y)
    features = FeatureExtractor("tiny_cnn", weights=path).fit_transform(X)
    probe = LogisticRegression(C=0.5, max_iter=5000, tol=1e-8).fit(features, y)
    np.testing.assert_allclose(clf.predict_proba(X), probe.predict_proba(features), atol=2e-3)


@pytest.mark.parametrize("freeze_depth, C", [("all", 1.0), (1, 0.01)])
def test_auto_head_warmup_C_is_soft_only_when_the_body_trains(tiny_weights, freeze_depth, C):
    """head_warmup_C="auto": the probe LogisticRegression(C=1) for a frozen backbone, a
    much softer one (C=0.01) when blocks train after it."""
    from sklearn.linear_model import LogisticRegression

    from sktransfer import FeatureExtractor

    rng = np.random.RandomState(0)
    y = np.repeat(["a", "b", "c"], 10)
    X = rng.rand(30, 32, 32, 3).astype(np.float32) * 0.5
    X[y == "a", :, :, 0] += 0.5
    path = str(tiny_weights[0])
    # max_epochs=0: the fitted network is the warm-up's (nothing trains after it)
    clf = TransferClassifier("tiny_cnn", weights=path, freeze_depth=freeze_depth, max_epochs=0,
                             head_warmup=500, random_state=0).fit(X, y)
    assert clf.head_warmup_C == "auto"
    features = FeatureExtractor("tiny_cnn", weights=path).fit_transform(X)
    probe = LogisticRegression(C=C, max_iter=5000, tol=1e-8).fit(features, y)
    np.testing.assert_allclose(clf.predict_proba(X), probe.predict_proba(features), atol=2e-3)


def test_min_steps_raises_the_epochs_of_a_tiny_fit(images):
    X, y = images  # 40 images in batches of 20: 2 steps per epoch
    record = _RecordLR()
    clf = _fit(images, None, freeze_depth=1, max_epochs=2, min_steps=9,
               callbacks=[("record", record)])
    assert clf.n_epochs_ == 5 and len(clf.history_) == 5
    lrs = dict(clf.callbacks_)["record"].lrs
    assert len(lrs) == 10 and lrs[-1] < 0.05 * 0.05  # one cosine over all 10 steps
    plain = _fit(images, None, freeze_depth=1, max_epochs=2, min_steps=0)  # no floor
    assert plain.n_epochs_ == 2 and len(plain.history_) == 2
    big = _fit(images, None, freeze_depth=1, max_epochs=6, min_steps=9)
    assert big.n_epochs_ == 6  # enough steps already: max_epochs as given


@pytest.mark.parametrize("param, value, match", [
    ("head_warmup_C", "soft", "head_warmup_C must be 'auto' or a number > 0"),
    ("head_warmup_C", 0, "head_warmup_C must be 'auto' or a number > 0, got 0"),
    ("min_steps", -1, r"min_steps must be an int in \[0"),
    ("min_steps", 2.5, "min_steps must be an int"),
])
def test_new_recipe_params_are_validated_in_fit(images, param, value, match):
    clf = TransferClassifier("tiny_cnn", weights=None, **FAST).set_params(**{param: value})
    with pytest.raises(ValueError, match=match):
        clf.fit(*images)


def test_every_estimator_defaults_to_a_floor_of_50_steps():
    from conftest import MIN_STEPS_DEFAULTS  # the suite itself trains with min_steps=0

    assert MIN_STEPS_DEFAULTS == {"TransferClassifier": 50, "TransferClassifierCV": 50,
                                  "TransferRegressor": 50, "TransferRegressorCV": 50}
