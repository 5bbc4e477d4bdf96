"""Cutting any timm model into sktransfer blocks.

timm models share a shape: ``forward_features`` runs the trunk and
``forward_head(x, pre_logits=True)`` pools it into a vector. Most trunks are a
plain sequence of top-level children (``conv1, bn1, ..., layer4``;
``stem, stages, norm_pre``; ``conv_stem, bn1, blocks, conv_head, bn2``), so:

1. the children are flattened one level (``stages.0``, ``stages.1``, ...);
2. the feature prefix is found by *running* them one by one on a small input and
   comparing with ``forward_features`` - no per-family table to go stale;
3. the prefix is cut into blocks where timm's own ``feature_info`` says a stage
   ends (so blocks follow resolution changes); leftovers after the last stage
   with parameters (EfficientNet's ``conv_head``, Swin's ``norm``) form a last
   ``head`` block;
4. everything else (global pool, ``fc_norm``, MobileNetV3's ``conv_head``...) is
   owned by the pool, which calls ``forward_head(x, pre_logits=True)``; the
   classifier itself is owned by nobody (it stays in ``source_module`` so full
   timm checkpoints still load).

Vision transformers get their own cut (patch embedding + position embedding,
then groups of transformer blocks). A model that fits neither is one block that
calls ``forward_features``: ``freeze_depth`` is then 0, 1 or "all".

The cut found for an architecture is remembered as module *names*, so the
check runs once per architecture and size in a process.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sktransfer import GlobalPool, TokenPool

__all__ = ["Layout", "split_model", "TimmHead"]

_MAX_BLOCKS = 8  # more feature points than this (ViT-like stacks) are grouped


@dataclass(frozen=True)
class Layout:
    kind: str                      # "sequential", "vit" or "single"
    groups: tuple = ()             # per block: tuple of module names
    names: tuple = ()              # block names
    out_dims: tuple = ()           # per block: ndim of its output
    num_features: int = 0


class _Sequence(nn.Module):
    """Named timm modules run in order (names kept for readable ``repr``)."""

    def __init__(self, modules: dict[str, nn.Module]):
        super().__init__()
        self.parts = nn.ModuleDict({k.replace(".", "_"): m for k, m in modules.items()})

    def forward(self, x):
        for module in self.parts.values():
            x = module(x)
        return x


class _ViTEmbed(nn.Module):
    """Patch embedding, class/register tokens, position embedding, ``norm_pre``."""

    def __init__(self, vit):
        super().__init__()
        self.patch_embed = vit.patch_embed
        self.patch_drop = getattr(vit, "patch_drop", nn.Identity())
        self.norm_pre = getattr(vit, "norm_pre", nn.Identity())
        self.pos_drop = getattr(vit, "pos_drop", nn.Identity())
        for name in ("cls_token", "reg_token", "pos_embed"):
            value = getattr(vit, name, None)
            if isinstance(value, nn.Parameter):
                self.register_parameter(name, value)  # the same Parameter: shared, not copied
        self._vit = [vit]  # a list: not registered, so its parameters are not ours

    def forward(self, x):
        vit = self._vit[0]
        x = vit._pos_embed(self.patch_embed(x))
        return self.norm_pre(self.patch_drop(x))


class _ModelMethod(nn.Module):
    """Runs one method of the timm model; registers only the submodules it owns."""

    def __init__(self, model, owned: list[nn.Module]):
        super().__init__()
        self.owned = nn.ModuleList(owned)
        self._model = [model]  # a list, so the whole model is not registered twice


class _ForwardFeatures(_ModelMethod):
    """The whole trunk as one block (models whose trunk is not a plain sequence)."""

    def forward(self, x):
        return self._model[0].forward_features(x)


class TimmHead(_ModelMethod):
    """``forward_head(x, pre_logits=True)``: timm's own pooling, without the classifier."""

    def forward(self, x):
        return self._model[0].forward_head(x, pre_logits=True)


_CONTAINER_NAMES = ("stages", "blocks", "layers", "features")


def _feature_points(model) -> list[str]:
    return [info["module"] for info in getattr(model, "feature_info", None) or []
            if isinstance(info, dict) and info.get("module")]


def _flat_children(model) -> list[tuple[str, nn.Module]]:
    """Top-level children, with the container of the stages opened one level."""
    points = _feature_points(model)
    flat = []
    for name, child in model.named_children():
        holds_points = any(p.startswith(name + ".") for p in points) if points else \
            name in _CONTAINER_NAMES
        if type(child) in (nn.Sequential, nn.ModuleList) and len(child) > 1 and holds_points:
            flat += [(f"{name}.{k}", c) for k, c in child.named_children()]
        else:
            flat.append((name, child))
    return flat


def _classifier(model) -> nn.Module | None:
    try:
        clf = model.get_classifier()
    except Exception:  # noqa: BLE001 - a model without the method has no classifier to spare
        return None
    return clf if isinstance(clf, nn.Module) else None


def _cover(module: nn.Module, exclude: set[int]) -> list[nn.Module]:
    """The fewest submodules of ``module`` holding everything but ``exclude``."""
    if id(module) in exclude:
        return []
    if not any(id(m) in exclude for m in module.modules()):
        return [module]
    out = []
    for child in module.children():
        out += _cover(child, exclude)
    return out


def _same(a, b) -> bool:
    return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
            and a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-5))


def _is_vit(model) -> bool:
    return (hasattr(model, "_pos_embed") and hasattr(model, "patch_embed")
            and isinstance(getattr(model, "blocks", None), nn.Sequential))


def _group_evenly(items: list, n_groups: int) -> list[list]:
    n_groups = min(n_groups, len(items))
    size, extra = divmod(len(items), n_groups)
    groups, start = [], 0
    for g in range(n_groups):
        stop = start + size + (1 if g < extra else 0)
        groups.append(items[start:stop])
        start = stop
    return groups


def _vit_groups(model) -> tuple[tuple, tuple]:
    layers = [f"blocks.{i}" for i in range(len(model.blocks))]
    n_groups = 4 if len(layers) % 4 == 0 else 3 if len(layers) % 3 == 0 else min(4, len(layers))
    groups = _group_evenly(layers, n_groups)
    groups[-1] = groups[-1] + ["norm"]
    names = ["embed"] + [f"blocks{g[0].split('.')[1]}-{g[-1 if g[-1] != 'norm' else -2].split('.')[1]}"
                         for g in groups]
    return (("<embed>",),) + tuple(tuple(g) for g in groups), tuple(names)


def _sequential_groups(model, flat, x, target) -> tuple[tuple, tuple] | None:
    """Run the flattened children in order until the output is ``forward_features``'."""
    head_side = {id(m) for m in _cover_head_ids(model)}
    end, y = None, x
    for index, (name, module) in enumerate(flat):
        if id(module) in head_side:
            break
        try:
            y = module(y)
        except Exception:  # noqa: BLE001 - not a plain sequence after all
            break
        if _same(y, target):
            end = index + 1
        elif end is not None:
            break
    if end is None:
        return None
    prefix = flat[:end]
    feature_points = _feature_points(model)

    def ends_stage(name):
        return any(p == name or p.startswith(name + ".") for p in feature_points)

    groups, current = [], []
    for name, module in prefix:
        current.append(name)
        if ends_stage(name):
            groups.append(current)
            current = []
    if current:  # after the last feature point
        has_params = any(p.numel() for n in current
                         for p in model.get_submodule(n).parameters())
        if has_params and groups:
            groups.append(current)
            tail = True
        elif groups:
            groups[-1] += current
            tail = False
        else:
            groups.append(current)
            tail = False
    else:
        tail = False
    if len(groups) > _MAX_BLOCKS:  # e.g. ConvMixer, MLP-Mixer: one feature point per layer
        body = groups[1:-1] if tail else groups[1:]
        merged = [sum(g, []) for g in _group_evenly(body, 4)]
        groups = [groups[0]] + merged + ([groups[-1]] if tail else [])
    names = ["stem"] + [f"stage{i}" for i in range(1, len(groups) - (1 if tail else 0))]
    if tail:
        names.append("head")
    if len(groups) == 1:
        names = ["features"]
    return tuple(tuple(g) for g in groups), tuple(names)


def _cover_head_ids(model):
    clf = _classifier(model)
    return [clf] if clf is not None and not isinstance(clf, nn.Identity) else []


def _make_blocks(model, layout: Layout) -> list[nn.Module]:
    blocks = []
    for group in layout.groups:
        if group == ("<embed>",):
            blocks.append(_ViTEmbed(model))
        elif len(group) == 1:
            blocks.append(model.get_submodule(group[0]))
        else:
            blocks.append(_Sequence({n: model.get_submodule(n) for n in group}))
    return blocks


def _head_side(model, blocks: list[nn.Module]) -> list[nn.Module]:
    """Modules the pool owns: all that no block owns, minus the classifier."""
    taken = {id(m) for b in blocks for m in b.modules()}
    clf = _classifier(model)
    exclude = {id(m) for m in clf.modules()} if clf is not None else set()
    owned = []
    for child in model.children():
        if id(child) in taken:
            continue
        if any(id(m) in taken for m in child.modules()):
            # a container whose stages went into blocks (e.g. `stages`): keep the rest
            owned += [c for c in child.children() if id(c) not in taken
                      and not any(id(m) in taken for m in c.modules())]
            continue
        owned += _cover(child, exclude)
    return owned


def _ownership_ok(model, blocks, pool) -> bool:
    """Every parameter but the classifier's belongs to exactly one stage."""
    clf = _classifier(model)
    clf_params = {id(p) for p in clf.parameters()} if clf is not None else set()
    seen: dict[int, int] = {}
    for stage in [*blocks, pool]:
        for p in stage.parameters():
            seen[id(p)] = seen.get(id(p), 0) + 1
    wanted = {id(p) for p in model.parameters()} - clf_params
    return set(seen) == wanted and all(v == 1 for v in seen.values())


def find_layout(model, size: int) -> Layout:
    """Work out (by running the model once on a small input) how to cut it."""
    was_training = model.training
    model.eval()
    try:
        generator = torch.Generator().manual_seed(0)  # leave the global RNG alone
        in_chans = getattr(model, "in_chans", None) or 3
        with torch.no_grad():
            try:
                x = torch.randn(1, in_chans, size, size, generator=generator)
                target = model.forward_features(x)
            except Exception:  # noqa: BLE001 - too small for this model: use its own size
                size = int((getattr(model, "pretrained_cfg", None) or {}).get(
                    "input_size", (3, 224, 224))[-1])
                x = torch.randn(1, in_chans, size, size, generator=generator)
                target = model.forward_features(x)
            pooled = model.forward_head(target, pre_logits=True)
            candidates = []
            if _is_vit(model):
                candidates.append(("vit", *_vit_groups(model)))
            found = _sequential_groups(model, _flat_children(model), x, target)
            if found is not None:
                candidates.append(("sequential", *found))
            for kind, groups, names in candidates:
                layout = Layout(kind, groups, names, (), pooled.shape[-1])
                blocks = _make_blocks(model, layout)
                pool = TimmHead(model, _head_side(model, blocks))
                if not _ownership_ok(model, blocks, pool):
                    continue
                y, dims = x, []
                for block in blocks:
                    y = block(y)
                    dims.append(y.dim())
                if _same(y, target) and _same(pool(y), pooled):
                    return Layout(kind, groups, names, tuple(dims), pooled.shape[-1])
        return Layout("single", (), ("features",), (target.dim(),), pooled.shape[-1])
    finally:
        model.train(was_training)


def split_model(model, layout: Layout):
    """``(blocks, block_names, pool, pool_for_block)`` for ``model`` cut as ``layout``."""
    if layout.kind == "single":
        clf = _classifier(model)
        exclude = {id(m) for m in clf.modules()} if clf is not None else set()
        block = _ForwardFeatures(model, _cover(model, exclude))
        blocks = [block]
        pool = TimmHead(model, [])
    else:
        blocks = _make_blocks(model, layout)
        pool = TimmHead(model, _head_side(model, blocks))
    pool_for_block = PoolForBlock(model, layout,
                                  getattr(model, "output_fmt", "NCHW") == "NHWC")
    return blocks, list(layout.names), pool, pool_for_block


class PoolForBlock:
    """``pool_for_block(i, mode)``: pools block ``i``'s output (a class, so it pickles)."""

    def __init__(self, model, layout: Layout, channels_last: bool):
        self._model = [model]
        self.layout = layout
        self.channels_last = channels_last

    def __call__(self, index: int, mode: str = "avg") -> nn.Module:
        if self.layout.kind == "single":
            return TimmHead(self._model[0], [])
        dims = self.layout.out_dims
        if (dims[index] if index < len(dims) else 4) == 3:
            return TokenPool("mean")
        return GlobalPool(mode, channels_last=self.channels_last)
