"""The stage runner and the one data-loader builder (``sktransfer/_stages.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sktransfer import TransferClassifier
from sktransfer._cache import prefix_activations
from sktransfer._common import make_backbone, preprocessor_for
from sktransfer._data import SampleDataset
from sktransfer._data._inputs import as_input
from sktransfer._network import TransferNet
from sktransfer._stages import (StageRunner, data_loader, enter_at, entering_at,
                                skorch_loader_defaults)


@pytest.fixture
def net_and_source():
    X = np.random.RandomState(0).randint(0, 255, (10, 32, 32, 3), dtype=np.uint8)
    source = as_input(X)
    torch.manual_seed(0)
    backbone = make_backbone("tiny_cnn", None, source, None)
    net = TransferNet(backbone, 2)
    return net, source, preprocessor_for(backbone, None)


def _reference(net, source, pre, stop, start=0):
    x = torch.stack([SampleDataset(source, None, pre)[i][0] for i in range(len(source))])
    net.eval()
    with torch.no_grad():
        return net.forward_prefix(x, stop, start)


@pytest.mark.parametrize("batch_size", [1, 3, 10, -1])
def test_features_are_the_stages_output_in_input_order(net_and_source, batch_size):
    net, source, pre = net_and_source
    stop = net.n_blocks + 1
    out = StageRunner(net, pre, "cpu", batch_size).features(source, stop)
    assert out.shape == (10, 64) and out.dtype == np.float32
    np.testing.assert_allclose(out, _reference(net, source, pre, stop).numpy(), atol=1e-5)


def test_run_restores_the_training_mode_and_starts_at_a_stage(net_and_source):
    net, source, pre = net_and_source
    net.train()
    runner = StageRunner(net, pre, "cpu", 4)
    prefix = torch.cat(runner.run(runner.loader(SampleDataset(source, None, pre, pixels=True)),
                                  2))
    assert net.training
    rest = torch.cat(runner.run([prefix[:5], prefix[5:]], net.n_blocks + 1, start=2))
    np.testing.assert_allclose(rest.numpy(),
                               _reference(net, source, pre, net.n_blocks + 1).numpy(), atol=1e-5)


def test_output_bytes_counts_every_sample(net_and_source):
    net, source, pre = net_and_source
    runner = StageRunner(net, pre, "cpu", 4)
    row = _reference(net, source, pre, 1)[0]
    assert runner.output_bytes(SampleDataset(source, None, pre), 1) == row.numel() * 4 * 10


def test_prefix_activations_match_the_runner(net_and_source):
    net, source, pre = net_and_source
    rows = prefix_activations(StageRunner(net, pre, "cpu", 3), source, 2, "test-stages",
                              store=False)
    assert len(rows) == 10
    np.testing.assert_allclose(torch.stack(rows).numpy(),
                               _reference(net, source, pre, 2).numpy(), atol=1e-5)


def test_batch_size_minus_one_reads_each_source_in_one_batch(net_and_source):
    net, source, pre = net_and_source
    runner = StageRunner(net, pre, "cpu", -1)
    assert runner.batch_for(10) == 10 and StageRunner(net, pre, "cpu", 4).batch_for(10) == 4
    assert len(runner.loader(SampleDataset(source, None, pre, pixels=True))) == 1
    rows = prefix_activations(runner, source, 2, "test-stages-whole", store=False)
    np.testing.assert_allclose(torch.stack(rows).numpy(),
                               _reference(net, source, pre, 2).numpy(), atol=1e-5)


@pytest.mark.parametrize("freeze_depth", ["all", -1, 0])
def test_skorchs_whole_set_batch_size_fits_and_predicts(freeze_depth):
    # batch_size=-1 is skorch's "one batch of everything"; the frozen-prefix cache fill
    # and the runner's inference passes read it the same way (it used to crash there)
    X = np.random.RandomState(0).rand(12, 32, 32, 3).astype("float32")
    y = np.array([0, 1] * 6)
    params = dict(weights=None, freeze_depth=freeze_depth, max_epochs=1, device="cpu",
                  random_state=0)
    whole = TransferClassifier("tiny_cnn", batch_size=-1, **params).fit(X, y)
    same = TransferClassifier("tiny_cnn", batch_size=12, **params).fit(X, y)
    np.testing.assert_allclose(whole.predict_proba(X), same.predict_proba(X), atol=1e-5)
    assert whole.transform(X).shape == (12, 64)


def test_a_plain_module_runs_whole():
    runner = StageRunner(nn.Flatten(), None, "cpu", 2)
    out = runner.run([torch.ones(2, 3), torch.zeros(1, 3)])
    assert [o.shape for o in out] == [(2, 3), (1, 3)]


def test_data_loader_follows_the_policy():
    dataset = list(range(5))
    loader = data_loader(dataset, batch_size=2)
    assert not loader.pin_memory and loader.num_workers == 0
    assert [b.tolist() for b in loader] == [[0, 1], [2, 3], [4]]  # in order
    assert loader.generator is not None  # never torch's global generator
    with_workers = data_loader(dataset, batch_size=2, num_workers=1)
    assert with_workers.multiprocessing_context is not None
    assert not with_workers.persistent_workers


def test_skorch_loader_defaults_leave_what_the_user_set():
    clf = TransferClassifier("tiny_cnn", weights=None, batch_size=4, num_workers=0,
                             iterator_valid__shuffle=True)
    train = skorch_loader_defaults(clf, list(range(8)), training=True)
    assert train["iterator_train__shuffle"] is True
    assert train["iterator_train__num_workers"] == 0
    assert train["iterator_train__pin_memory"] is False
    valid = skorch_loader_defaults(clf, list(range(8)), training=False)
    assert "iterator_valid__shuffle" not in valid
    assert isinstance(valid["iterator_valid__generator"], torch.Generator)


def test_the_network_enters_at_one_stage_at_a_time(net_and_source):
    net = net_and_source[0]
    enter_at(net, 2)
    assert net.start == 2
    with entering_at(net, 3):
        assert net.start == 3
    assert net.start == 0
