"""Freezing strategies observed from the outside: which tensors moved, lr groups."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV

from sktransfer import FreezeStrategy, TransferClassifier, get_backbone, get_freezer
from sktransfer.freezing import FREEZERS, register_freezer

COMMON = dict(weights=None, max_epochs=2, batch_size=40, lr=5e-2, device="cpu",
              random_state=0, cache=False)


@pytest.fixture
def weights_file(tiny_weights):
    return tiny_weights[0]


def _params(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def _fit(images, weights_file, **kw):
    X, y = images
    params = {**COMMON, "weights": weights_file, **kw}
    return TransferClassifier("tiny_cnn", **params).fit(X, y)


def _initial(weights_file):
    return get_backbone("tiny_cnn", weights=weights_file)


def test_bitfit_moves_only_biases_and_norm_params(images, weights_file):
    clf = _fit(images, weights_file, freeze_strategy="bitfit", freeze_depth=1)
    start = _initial(weights_file)
    for i in range(1, 4):
        before = dict(start.blocks[i].named_parameters())
        for name, p in clf.module_.blocks[i].named_parameters():
            is_conv_weight = p.dim() == 4
            moved = not torch.equal(p, before[name])
            if is_conv_weight:
                assert not moved, f"block {i} {name} (a conv weight) moved under BitFit"
    norm_moved = any(not torch.equal(p, dict(start.blocks[3].named_parameters())[n])
                     for n, p in clf.module_.blocks[3].named_parameters() if p.dim() == 1)
    assert norm_moved
    for name, p in clf.module_.blocks[0].named_parameters():
        assert torch.equal(p, dict(start.blocks[0].named_parameters())[name])


def test_gradual_after_two_epochs_top_moved_bottom_not(images, weights_file):
    start = _initial(weights_file)
    # epoch 0 trains the head only; epoch 1 opens the top block (and the pool above it,
    # which has no parameters and so is not a step of its own)
    clf = _fit(images, weights_file, freeze_strategy="gradual", freeze_depth=0, max_epochs=2)
    top_before = dict(start.blocks[3].named_parameters())
    low_before = dict(start.blocks[0].named_parameters())
    assert any(not torch.equal(p, top_before[n]) for n, p in clf.module_.blocks[3].named_parameters())
    assert all(torch.equal(p, low_before[n]) for n, p in clf.module_.blocks[0].named_parameters())
    assert clf.module_.blocks[0].training is False or 0 in clf.module_.eval_stages


def test_gradual_never_unfreezes_below_freeze_depth(images, weights_file):
    clf = _fit(images, weights_file, freeze_strategy="gradual", freeze_depth=2, max_epochs=6)
    start = _initial(weights_file)
    for i in (0, 1):
        before = dict(start.blocks[i].named_parameters())
        assert all(torch.equal(p, before[n]) for n, p in clf.module_.blocks[i].named_parameters())
    assert any(not torch.equal(p, dict(start.blocks[2].named_parameters())[n])
               for n, p in clf.module_.blocks[2].named_parameters())


def test_discriminative_param_groups_decay(images, weights_file):
    clf = _fit(images, weights_file, freeze_strategy="discriminative", freeze_depth=1,
               freeze_strategy__decay=0.5, lr=0.1)
    # head at lr, then blocks 3, 2, 1 (the pool has no parameters); each part is split
    # into decayed weights and undecayed norm parameters (the head: weight and bias)
    lrs = [g["lr"] for g in clf.optimizer_.param_groups]
    expected = [0.1, 0.1 * 0.5 ** 2, 0.1 * 0.5 ** 3, 0.1 * 0.5 ** 4]
    assert lrs == pytest.approx([lr for lr in expected for _ in (0, 1)])
    clf.set_params(lr=0.2)  # the ratios survive a new base rate
    assert [g["lr"] for g in clf.optimizer_.param_groups] == pytest.approx(
        [2 * lr for lr in lrs])


def test_lp_ft_switches_from_probe_to_finetune(images, weights_file):
    start = _initial(weights_file)
    probe = _fit(images, weights_file, freeze_strategy="lp_ft", freeze_depth=0, max_epochs=2,
                 freeze_strategy__switch_epoch=2)
    for i in range(4):
        before = dict(start.blocks[i].named_parameters())
        assert all(torch.equal(p, before[n]) for n, p in probe.module_.blocks[i].named_parameters())
    tuned = _fit(images, weights_file, freeze_strategy="lp_ft", freeze_depth=0, max_epochs=2,
                 freeze_strategy__switch_epoch=1)
    before = dict(start.blocks[0].named_parameters())
    assert any(not torch.equal(p, before[n]) for n, p in tuned.module_.blocks[0].named_parameters())


def test_strategies_compose_with_prefix_cache(images):
    X, y = images
    for name in ["depth", "gradual", "discriminative", "bitfit", "lp_ft"]:
        clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth=2, freeze_strategy=name,
                                 max_epochs=2, device="cpu", random_state=0).fit(X, y)
        assert clf.cache_used_, name
        plain = TransferClassifier("tiny_cnn", weights=None, freeze_depth=2, cache=False,
                                   freeze_strategy=name, max_epochs=2, device="cpu",
                                   random_state=0).fit(X, y)
        np.testing.assert_allclose(clf.predict_proba(X), plain.predict_proba(X), atol=1e-5,
                                   err_msg=name)


def test_grid_search_over_strategy_depth_and_option(images):
    X, y = images
    search = GridSearchCV(
        TransferClassifier("tiny_cnn", weights=None, max_epochs=1, device="cpu", random_state=0,
                           freeze_strategy="discriminative"),
        [{"freeze_strategy": ["discriminative"], "freeze_depth": [0, 2],
          "freeze_strategy__decay": [0.3, 0.9]},
         {"freeze_strategy": ["bitfit", "gradual", "lp_ft"], "freeze_depth": [1]}],
        cv=2, error_score="raise").fit(X, y)
    assert len(search.cv_results_["params"]) == 7


def test_strategy_object_and_bad_options(images):
    X, y = images

    class HeadOnly(FreezeStrategy):
        def setup(self, ctx):
            ctx.freeze(0)

    strategy = HeadOnly()
    clf = TransferClassifier("tiny_cnn", weights=None, freeze_strategy=strategy, freeze_depth=0,
                             max_epochs=1, device="cpu").fit(X, y)
    assert clf.freezer_ is not strategy
    assert not any(p.requires_grad for p in clf.module_.blocks.parameters())
    with pytest.raises(ValueError, match="does not take the options"):
        TransferClassifier("tiny_cnn", weights=None, freeze_strategy="depth",
                           freeze_strategy__nope=1, device="cpu").fit(X, y)
    with pytest.raises(TypeError, match="lacks"):
        TransferClassifier("tiny_cnn", weights=None, freeze_strategy=object(),
                           device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="decay must be in"):
        get_freezer("discriminative", decay=2.0)


def test_third_party_strategy_with_penalty_via_registry(images):
    X, y = images

    @register_freezer("pull_to_zero_test")
    class PullToZero(FreezeStrategy):
        def __init__(self, strength=1.0):
            self.strength = strength

        def penalty(self, ctx):
            return self.strength * sum((p ** 2).sum() for p in ctx.head.parameters())

    try:
        weak = TransferClassifier("tiny_cnn", weights=None, freeze_strategy="pull_to_zero_test",
                                  freeze_strategy__strength=0.0, max_epochs=3, device="cpu",
                                  random_state=0, lr=0.05).fit(X, y)
        strong = TransferClassifier("tiny_cnn", weights=None, freeze_strategy="pull_to_zero_test",
                                    freeze_strategy__strength=10.0, max_epochs=3, device="cpu",
                                    random_state=0, lr=0.05).fit(X, y)
        norm = lambda c: sum(float((p.detach() ** 2).sum()) for p in c.module_.head.parameters())
        assert norm(strong) < norm(weak)
    finally:
        FREEZERS.unregister("pull_to_zero_test")


# -- guard rails for third-party strategies ---------------------------------------------
def _tiny_clf(**kw):
    params = {"weights": None, "max_epochs": 1, "device": "cpu", "random_state": 0, **kw}
    return TransferClassifier("tiny_cnn", **params)


def test_param_groups_without_the_head_is_an_error_naming_the_strategy(images):
    X, y = images

    class ForgetsHead(FreezeStrategy):
        def param_groups(self, ctx):
            return [{"params": [p for i in self.trainable_stages(ctx)
                                for p in ctx.stages[i].parameters()]}]

    with pytest.raises(ValueError, match=r"ForgetsHead: param_groups\(ctx\) leaves out the new "
                                         r"head's parameters \(head\.0\.weight, head\.0\.bias\)"
                                         r", so the head would never train"):
        _tiny_clf(freeze_strategy=ForgetsHead(), freeze_depth=2).fit(X, y)


def test_param_groups_without_a_trainable_stage_is_an_error(images):
    X, y = images

    class HeadOnlyGroups(FreezeStrategy):  # unfreezes stages 2.. but gives only the head
        def param_groups(self, ctx):
            return [{"params": list(ctx.head.parameters())}]

    with pytest.raises(ValueError, match=r"HeadOnlyGroups: \d+ parameters require a gradient "
                                         r"after setup but are in no group.*blocks\.2\."):
        _tiny_clf(freeze_strategy=HeadOnlyGroups(), freeze_depth=2).fit(X, y)


class _WholeBackboneFrozen(FreezeStrategy):
    """A linear probe whatever freeze_depth says: every stage frozen all fit long."""

    def setup(self, ctx):
        ctx.freeze()

    def param_groups(self, ctx):
        return [{"params": list(ctx.head.parameters())}]

    def frozen_prefix(self, ctx):
        return len(ctx.stages)


def test_frozen_prefix_is_honoured_beyond_freeze_depth(images):
    X, y = images
    clf = _tiny_clf(freeze_strategy=_WholeBackboneFrozen(), freeze_depth=0, cache=True).fit(X, y)
    assert clf.cache_used_  # not capped at freeze_depth=0
    from sktransfer._cached_fit import CachedFit

    assert CachedFit.for_net(clf, clf._predict_source(X), None).depth == clf.backbone_.n_blocks + 1
    plain = _tiny_clf(freeze_strategy=_WholeBackboneFrozen(), freeze_depth=0,
                      cache=False).fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X), plain.predict_proba(X), atol=1e-5)


def test_frozen_prefix_naming_a_trainable_stage_is_an_error(images):
    X, y = images

    class Overclaims(FreezeStrategy):
        def frozen_prefix(self, ctx):
            return len(ctx.stages)  # but setup leaves stages freeze_depth.. trainable

    with pytest.raises(ValueError, match=r"Overclaims: frozen_prefix\(ctx\) is 5, but stage 1 "
                                         r"has parameters that require a gradient.*"
                                         r"ctx\.freeze\(0, 5\)"):
        _tiny_clf(freeze_strategy=Overclaims(), freeze_depth=1).fit(X, y)
    with pytest.raises(ValueError, match=r"frozen_prefix\(ctx\) must be an int in 0\.\.5"):
        _tiny_clf(freeze_strategy=type("Huge", (FreezeStrategy,), {
            "frozen_prefix": lambda self, ctx: 9})(), freeze_depth=1).fit(X, y)


def test_on_epoch_begin_counts_from_zero_in_every_fit(images):
    X, y = images

    class Recorder(FreezeStrategy):
        def __init__(self):
            self.epochs = []

        def on_epoch_begin(self, ctx, epoch):
            self.epochs.append((epoch, ctx.max_epochs))

    clf = _tiny_clf(freeze_strategy=Recorder(), max_epochs=2, warm_start=True).fit(X, y)
    clf.fit(X, y)  # warm start: same network, a new fit
    clf.partial_fit(X, y)
    assert clf.freezer_.epochs == [(0, 2), (1, 2)] * 3
    assert len(clf.history) == 6


def test_frozen_prefix_at_naming_a_trainable_stage_is_an_error(images):
    X, y = images

    class ClaimsHeadOnly(FreezeStrategy):
        def frozen_prefix_at(self, ctx, epoch):
            return len(ctx.stages)  # but stages freeze_depth.. train

    with pytest.raises(ValueError, match=r"ClaimsHeadOnly: frozen_prefix_at\(ctx, 0\) is 5, "
                                         r"but stage 1 has parameters that require a gradient"
                                         r".*on_epoch_begin with ctx\.freeze\(0, 5\)"):
        _tiny_clf(freeze_strategy=ClaimsHeadOnly(), freeze_depth=1).fit(X, y)
    _tiny_clf(freeze_strategy=ClaimsHeadOnly(), freeze_depth=1, cache=False).fit(X, y)

    class Shallower(FreezeStrategy):
        def frozen_prefix_at(self, ctx, epoch):
            return 0

    with pytest.raises(ValueError, match=r"Shallower: frozen_prefix_at\(ctx, 0\) must be an "
                                         r"int in 2\.\.5: at least frozen_prefix\(ctx\) = 2"):
        _tiny_clf(freeze_strategy=Shallower(), freeze_depth=2).fit(X, y)


def test_strategy_objects_without_frozen_prefix_at_keep_working(images):
    X, y = images

    class Plain:  # no FreezeStrategy base: the hooks of the original contract only
        def setup(self, ctx):
            ctx.unfreeze(ctx.freeze_depth)
            ctx.freeze(0, ctx.freeze_depth)

        def param_groups(self, ctx):
            return [{"params": [p for p in ctx.module.parameters() if p.requires_grad]}]

        def on_epoch_begin(self, ctx, epoch):
            pass

        def penalty(self, ctx):
            return None

        def frozen_prefix(self, ctx):
            return ctx.freeze_depth

    clf = _tiny_clf(freeze_strategy=Plain(), freeze_depth=2, max_epochs=2).fit(X, y)
    assert clf.cache_used_ and clf.module_.start == 0


def test_lp_ft_and_gradual_say_what_is_frozen_each_epoch(images):
    X, y = images
    seen = []

    class Watch(FreezeStrategy):  # records the answers of a built-in strategy
        def __init__(self, inner):
            self.inner = inner

        def setup(self, ctx):
            self.inner.setup(ctx)

        def on_epoch_begin(self, ctx, epoch):
            self.inner.on_epoch_begin(ctx, epoch)

        def frozen_prefix_at(self, ctx, epoch):
            seen.append(self.inner.frozen_prefix_at(ctx, epoch))
            return seen[-1]

    _tiny_clf(freeze_strategy=Watch(get_freezer("lp_ft", switch_epoch=2)), freeze_depth=1,
              max_epochs=3).fit(X, y)
    assert seen == [5, 5, 1]
    seen.clear()
    clf = _tiny_clf(freeze_strategy=Watch(get_freezer("gradual")), freeze_depth=1,
                    max_epochs=4, warm_start=True).fit(X, y)
    assert seen == [5, 3, 2, 1]
    seen.clear()
    clf.fit(X, y)  # a continued fit: everything above freeze_depth is already open
    assert seen == [1, 1, 1, 1]
