"""BatchNorm folding of frozen inference networks (FeatureExtractor.transform)."""

import numpy as np
import torch
from torch import nn

from sktransfer import FeatureExtractor, clear_caches
from sktransfer._bn_fold import folded


def _norms(module):
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def _randomise_norms(module):
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
    return module


class _Shared(nn.Module):
    """conv -> bn, but the conv output also feeds the sum: must not fold."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(8, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


class _Branchy(nn.Module):
    """Data-dependent control flow (not traceable); its child is."""

    def __init__(self):
        super().__init__()
        self.inner = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())

    def forward(self, x):
        return self.inner(x) if x.sum() > -1e9 else x


def test_folding_keeps_outputs_and_leaves_the_original_alone():
    net = _randomise_norms(nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        _Shared(), _Branchy())).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fast = folded(net)
    assert fast is not net and _norms(net) == 3
    # the first pair and the traceable child of _Branchy fold; _Shared's must not
    assert _norms(fast) == 1 and type(fast) is nn.Sequential
    x = torch.randn(2, 3, 9, 9)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), net(x), rtol=1e-5, atol=1e-5)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert folded(net) is fast and folded(net, make=False) is fast  # kept while weights stay
    with torch.no_grad():
        net[0].weight.mul_(2)
    assert folded(net, make=False) is net  # an in-place change: the copy is stale
    assert folded(net) is not fast
    clear_caches()


def test_training_hooked_and_batchnorm_free_networks_are_not_copied():
    net = _randomise_norms(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))
    assert folded(net.train()) is net
    handle = net.eval()[1].register_forward_hook(lambda *args: None)
    assert folded(net) is net  # a hook must see the network it was put on
    handle.remove()
    assert folded(net) is not net
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()
    assert folded(plain) is plain


def test_feature_extractor_features_match_the_unfolded_network(images):
    X, _ = images
    fe = FeatureExtractor("tiny_cnn", weights=None, device="cpu", cache=False,
                          batch_size=8).fit(X)
    assert folded(fe.extractor_, make=False) is fe.extractor_  # a 1-sample fit: not folded
    _randomise_norms(fe.extractor_)
    assert _norms(fe.extractor_) > 0
    features = fe.transform(X)  # 40 images, batches of 8: folded
    made = folded(fe.extractor_, make=False)
    assert made is not fe.extractor_ and _norms(made) == 0
    with torch.inference_mode():
        x = torch.stack([fe.preprocessor_(torch.from_numpy(np.moveaxis(im, -1, 0)).float())
                         for im in X])
        plain = fe.extractor_(x.contiguous(memory_format=torch.channels_last)).numpy()
    np.testing.assert_allclose(features, plain, rtol=1e-4, atol=1e-5)
