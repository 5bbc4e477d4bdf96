"""TransferClassifier: a skorch classifier around a pretrained backbone."""

from __future__ import annotations

import difflib
import inspect
import warnings
from numbers import Real

import numpy as np
import torch
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import column_or_1d
from skorch import NeuralNetClassifier
from skorch.callbacks import EpochScoring

from ._constraints import Interval
from ._network import TransferNet
from ._params import TRANSFER_CONSTRAINTS
from ._recipe import (BACKBONE_LR_SCALE, HEAD_WARMUP, HEAD_WARMUP_C, LABEL_SMOOTHING, MIN_STEPS,
                      resolve_head_warmup_C, warm_up_head)
from ._transfer import TransferBase, resolve_freeze_depth

__all__ = ["TransferClassifier", "resolve_freeze_depth"]


def _encoded_accuracy(net, X, y):
    """Validation accuracy on encoded labels (skorch's scorers see class indices)."""
    proba = net.predict_proba(X)
    return float(np.mean(np.argmax(proba, axis=1) == np.asarray(y)))


def _is_missing(value) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT
    except TypeError:  # pandas.NA refuses to be a bool
        return type(value).__name__ == "NAType"


def check_labels_present(y) -> None:
    """Raise a ``ValueError`` naming the positions of missing labels (None, NaN, NA)."""
    values = y.to_numpy() if hasattr(y, "to_numpy") else np.asarray(
        y, dtype=object if isinstance(y, (list, tuple)) else None)
    if values.ndim != 1:
        return  # not a column of labels; column_or_1d explains the shape
    if values.dtype.kind == "f":
        missing = np.flatnonzero(np.isnan(values))
    elif values.dtype == object:
        missing = np.flatnonzero([_is_missing(v) for v in values])
    else:
        return
    if len(missing):
        where = ", ".join(map(str, missing[:10].tolist())) + (", ..." if len(missing) > 10
                                                                else "")
        raise ValueError(f"y has {len(missing)} missing label(s) (None or NaN) at position(s) "
                         f"{where}; drop those samples or fill in their labels")


def warn_labels_seen_once(y: np.ndarray) -> None:
    """Warn about labels that occur in one sample only while others occur more often.

    A typo (``"catcup"`` among many ``"cat_cup"``) would otherwise become a class
    of its own without a word. When every label occurs once, that is what the user
    meant, and nothing is said.
    """
    labels, counts = np.unique(y, return_counts=True)
    once = labels[counts == 1]
    if len(once) == 0 or len(once) == len(labels):
        return
    frequent = [v for v in labels[counts > 1].tolist() if isinstance(v, str)]
    parts = []
    for label in once[:10].tolist():
        close = difflib.get_close_matches(label, frequent, n=1) \
            if isinstance(label, str) else []
        parts.append(f"{label!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    more = f" and {len(once) - 10} more" if len(once) > 10 else ""
    warnings.warn(f"{'label' if len(once) == 1 else 'labels'} {', '.join(parts)}{more} "
                  f"{'occurs' if len(once) == 1 else 'occur'} once in y, while other labels "
                  f"occur several times: each becomes a class of its own. If that is a typo, "
                  f"correct the label in y; if not, ignore this warning.", UserWarning,
                  stacklevel=5)  # the caller of fit


class TransferClassifier(TransferBase, NeuralNetClassifier):
    """Fine-tune a pretrained backbone; how much of it stays frozen is a hyper-parameter.

    A skorch :class:`~skorch.NeuralNetClassifier`: callbacks, history,
    ``train_split``, ``warm_start``, ``partial_fit``, ``optimizer__*``,
    ``callbacks__*``, checkpoints and early stopping keep their skorch names.
    Once fitted it is also a transformer: :meth:`transform` gives the fine-tuned
    backbone's pooled features, to feed another model (a ``Pipeline`` step).

    Parameters
    ----------
    backbone : str, default="resnet18"
        A registered backbone name (see :func:`sktransfer.list_backbones`).
    weights : None, "DEFAULT", str or path, default="DEFAULT"
        Pretrained weights: ``"DEFAULT"`` (the backbone's recommended weights,
        from the local cache), ``None`` (random init), a backbone-specific
        weights name, or a ``.pth``/``.pt``/``.safetensors`` file.
    freeze_depth : int or "all", default="all"
        ``k`` freezes blocks ``0..k-1`` (eval mode, no gradients); ``0`` trains
        everything; negative ``k`` counts from the top; ``"all"`` freezes the
        whole backbone (a linear probe).
    freeze_strategy : str or strategy object, default="depth"
        How the unfrozen part is adapted (see :func:`sktransfer.list_strategies`);
        options go in ``freeze_strategy__<option>`` params.
    image_size : int or None, default=None
        Side of the square images fed to the network; None uses the size the
        weights were trained at.
    augment : None, "light", "flip" or callable, default=None
        Training-time augmentation on float (C, H, W) tensors in [0, 1];
        never applied at predict time. ``"flip"`` is a random horizontal flip,
        ``"light"`` adds a random resized crop (70-100 % of the area). A callable
        may be a torchvision transform, e.g.
        ``v2.RandomResizedCrop(224, scale=(0.7, 1.0))``; it is a value, never a
        part of the net. (In a ``GridSearchCV`` grid, wrap a transform that has
        a static ``get_params`` - ``RandomResizedCrop``, ``ColorJitter`` - in
        ``v2.Compose([...])``: scikit-learn's clone of a grid value would call it.)
    head_hidden : int or None, default=None
        Width of a hidden layer in the new head (None: a single Linear).
    head_dropout : float, default=0.0
        Dropout before the head's layers.
    cache : "auto", bool, default="auto"
        Compute the frozen prefix once per fit and train the rest on cached
        activations. ``"auto"`` turns it on when it is valid - no augmentation,
        at least one frozen stage, a strategy whose ``frozen_prefix`` is > 0 -
        and when the activations fit in ``cache_memory``; otherwise it silently
        runs uncached. Epochs in which the strategy freezes more (the head-only
        epochs of ``lp_ft`` and ``gradual``: its ``frozen_prefix_at``) train on
        the cached output of that deeper prefix. ``True`` raises when caching
        is invalid.
    cache_memory : int, default=2 GiB
        Budget in bytes for cached activations of one fit. It is also the budget
        of the process-wide cache shared across grid-search candidates and
        folds: each fit sets it (shrinking it evicts at once), and
        :func:`sktransfer.clear_caches` releases the memory.
    random_state : int, RandomState or None, default=None
        Seeds head initialisation, shuffling and dropout: the same value gives
        the same fitted model on the same device.
    amp : bool, default=False
        Mixed precision on CUDA: forward passes run under ``torch.autocast``
        with bfloat16 (no gradient scaler needed). Ignored on the CPU.
    norm_mode : {"frozen", "train"}, default="frozen"
        ``"frozen"`` keeps every BatchNorm layer in inference mode, also in
        trainable blocks: running statistics stay the pretrained ones, the
        affine parameters train. ``"train"``: plain PyTorch behaviour, batch
        statistics in trainable blocks (harmful on small data).
    head_warmup : int, default=100
        L-BFGS iterations in which the new head is fitted alone, like a
        ``LogisticRegression``, on the pooled features of the frozen pretrained
        backbone before the main epochs (only when the network is freshly
        built). The features come from the frozen-prefix cache. 0 turns it off.
    head_warmup_C : "auto" or float, default="auto"
        Inverse L2 strength of that fit, as ``LogisticRegression``'s ``C``.
        ``"auto"``: 1.0 when only the head trains (the probe
        ``LogisticRegression`` would fit), 0.01 when the body trains too: a
        head fitted to convergence is over-confident on a small training set
        and its first fine-tuning steps throw the pretrained body around.
    backbone_lr_scale : float, default=1.0
        The backbone's learning rate is ``lr * backbone_lr_scale``; the head's
        is ``lr``. Per-group scales of a strategy multiply on top.
    lr_schedule : {"cosine", "constant"}, default="cosine"
        ``"cosine"``: linear warm-up over the first ``lr_warmup`` fraction of
        the steps, then cosine decay to zero, stepped every batch.
    lr_warmup : float, default=0.1
        Fraction of the steps spent warming the learning rate up, in [0, 1).
    min_steps : int, default=50
        A floor on optimizer steps: when ``max_epochs`` epochs would make
        fewer, ``max_epochs`` is raised to ``ceil(min_steps / batches per
        epoch)`` (30 images in batches of 32: 50 epochs instead of 10; from
        500 images on, 10 epochs are already 160 steps and nothing changes).
        The number of epochs run is ``n_epochs_``. 0 turns the floor off.
    label_smoothing : float, default=0.0
        Label smoothing of the cross-entropy loss, in [0, 1).
    num_workers : "auto" or int, default="auto"
        Data-loader worker processes decoding the images, for training,
        prediction and the frozen-prefix cache. ``"auto"``: for a list of image
        file paths, ``min(CPU cores, 8, number of batches)`` (0 when that is 1);
        for in-memory inputs (arrays, PIL images, vectors, texts) 0, where
        workers would only add the cost of moving each sample between
        processes. An int is used as given. The workers of a fit persist across
        its epochs; on CUDA batches come in pinned memory. skorch's
        ``iterator_train__num_workers`` / ``iterator_valid__num_workers``, when
        set, win over this for their loaders (the training one also for the
        cache).
    lr : float, default=1e-3
    max_epochs : int, default=10
    batch_size : int, default=32
    optimizer : torch optimizer class, default=AdamW
        Built with one group per (part, decay) pair: parameters with fewer than
        two dimensions (biases, normalisation) get no weight decay. torch's
        Adam and AdamW run their fused kernel (``fused=True``, several times
        faster per step on CPU) unless ``optimizer__fused`` or
        ``optimizer__foreach`` is given.
    train_split : callable or None, default=None
        None trains on all data (few-shot friendly); pass
        ``skorch.dataset.ValidSplit(5, stratified=True)`` for a validation split.
    device : str, default="auto"
        ``"auto"`` uses CUDA when available.
    verbose : int, default=0
        1 prints skorch's epoch table and a progress bar while the frozen
        prefix is cached.

    Attributes
    ----------
    classes_ : ndarray
        The labels seen in ``fit``, sorted; ``predict`` returns them.
    module_ : TransferNet
        The fitted network (``blocks``, ``pool``, ``head``).
    backbone_ : Backbone
        The backbone description the network was built from.
    freeze_depth_ : int
        The resolved number of frozen stages.
    freezer_ : FreezeStrategy
        The strategy instance used for the fit.
    cache_used_ : bool
        Whether the last fit trained on cached prefix activations (for the
        whole fit or for some epochs).
    n_epochs_ : int
        Epochs the last fit ran: ``max_epochs``, or more to reach ``min_steps``.
    cache_depth_ : int
        How many leading stages the last fit cached for the whole fit (0: none).
        Predictions look these stages' outputs up in the same cache (computing
        only the missing ones), so cross-validation scores folds without
        re-running them.
    n_features_in_ : int
        Columns of X (vector backbones only).

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import TransferClassifier
    >>> X = np.random.RandomState(0).rand(20, 32, 32, 3).astype("float32")
    >>> y = np.array(["cat", "dog"] * 10)
    >>> clf = TransferClassifier("tiny_cnn", weights=None, freeze_depth=2, max_epochs=1,
    ...                          random_state=0).fit(X, y)
    >>> clf.predict(X[:2]).dtype.kind
    'U'
    """

    prefixes_ = NeuralNetClassifier.prefixes_ + ["freeze_strategy"]
    _parameter_constraints = {**TRANSFER_CONSTRAINTS,
                              "label_smoothing": [Interval(Real, 0, 1, closed="left")]}

    def __init__(self, backbone="resnet18", weights="DEFAULT", freeze_depth="all",
                 freeze_strategy="depth", image_size=None, augment=None, head_hidden=None,
                 head_dropout=0.0, cache="auto", cache_memory=2 << 30, random_state=None,
                 amp=False, *, norm_mode="frozen", head_warmup=HEAD_WARMUP,
                 head_warmup_C=HEAD_WARMUP_C, backbone_lr_scale=BACKBONE_LR_SCALE,
                 lr_schedule="cosine", lr_warmup=0.1, min_steps=MIN_STEPS,
                 label_smoothing=LABEL_SMOOTHING,
                 num_workers="auto", module=TransferNet, criterion=torch.nn.CrossEntropyLoss,
                 optimizer=torch.optim.AdamW, lr=1e-3, max_epochs=10, batch_size=32,
                 train_split=None, device="auto", verbose=0, **kwargs):
        super().__init__(
            backbone, weights, freeze_depth, freeze_strategy, image_size, augment, head_hidden,
            head_dropout, cache, cache_memory, random_state, amp, norm_mode=norm_mode,
            head_warmup=head_warmup, head_warmup_C=head_warmup_C,
            backbone_lr_scale=backbone_lr_scale, lr_schedule=lr_schedule, lr_warmup=lr_warmup,
            min_steps=min_steps,
            num_workers=num_workers, module=module, criterion=criterion, optimizer=optimizer,
            lr=lr, max_epochs=max_epochs, batch_size=batch_size, train_split=train_split,
            device=device, verbose=verbose, **kwargs)
        self.label_smoothing = label_smoothing

    @property
    def _default_callbacks(self):
        callbacks = []
        for name, cb in super()._default_callbacks:
            if name == "valid_acc":
                cb = EpochScoring(_encoded_accuracy, name="valid_acc", lower_is_better=False)
            callbacks.append((name, cb))
        return callbacks

    # -- labels -----------------------------------------------------------------------
    @property
    def classes_(self):
        try:
            return self._classes
        except AttributeError:
            raise AttributeError("TransferClassifier has no attribute 'classes_' before fit; "
                                 "call fit first") from None

    def _encode_target(self, y, n_samples, fitting: bool):
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None: "
                             "TransferClassifier.fit needs labels")
        check_labels_present(y)
        if isinstance(y, (list, tuple)):
            unique_labels(y)  # "Mix of label input types" before numpy turns 1 into "1"
        y = column_or_1d(np.asarray(y) if not hasattr(y, "iloc") else y.to_numpy(), warn=True)
        if len(y) != n_samples:
            raise ValueError(f"X and y have different lengths: {n_samples} samples in X, "
                             f"{len(y)} labels in y")
        check_classification_targets(y)
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinite labels")
        if fitting:
            classes = np.unique(y) if self.classes is None else np.unique(np.asarray(self.classes))
            if len(classes) < 2:
                raise ValueError(f"y has {len(classes)} class ({classes.tolist()}); a classifier "
                                 f"needs at least 2 classes")
            if self.classes is None:
                warn_labels_seen_once(y)
            self._classes = classes
        classes = self._classes
        index = np.searchsorted(classes, y)
        index = np.clip(index, 0, len(classes) - 1)
        unseen = classes[index] != y
        if unseen.any():
            raise ValueError(f"y holds labels not seen in fit: {np.unique(y[unseen]).tolist()[:5]}; "
                             f"known classes are {classes.tolist()[:10]}")
        return index.astype(np.int64)

    def _target_fitted(self) -> bool:
        return hasattr(self, "_classes")

    def _n_outputs(self) -> int:
        return len(self._classes)

    def _fit_head(self, head, features, target, sample_weight) -> float:
        return warm_up_head(head, features, target, sample_weight=sample_weight,
                            max_iter=int(self.head_warmup),
                            C=resolve_head_warmup_C(self.head_warmup_C, self._body_trains()))

    # -- fitting ----------------------------------------------------------------------
    def partial_fit(self, X, y=None, classes=None, sample_weight=None, **fit_params):
        """Train further without re-initialising (see skorch's ``partial_fit``).

        ``classes`` (all labels, on the first call) as sklearn's ``partial_fit``.
        """
        def set_classes():
            if classes is not None:
                self.classes = classes
        return self._partial_fit(X, y, sample_weight, fit_params, before_first_fit=set_classes)

    def initialize_criterion(self):
        kwargs = self.get_params_for("criterion")
        if self.label_smoothing and "label_smoothing" not in kwargs \
                and isinstance(self.criterion, type):
            if "label_smoothing" not in inspect.signature(self.criterion).parameters:
                raise ValueError(f"label_smoothing={self.label_smoothing!r} but criterion "
                                 f"{getattr(self.criterion, '__name__', self.criterion)!r} takes "
                                 f"no label_smoothing argument; set label_smoothing=0")
            kwargs["label_smoothing"] = float(self.label_smoothing)
        self.criterion_ = self.initialized_instance(self.criterion, kwargs)
        return self

    # -- prediction -------------------------------------------------------------------
    def predict_proba(self, X):
        """Class probabilities, columns in ``classes_`` order."""
        source = self._predict_source(X)
        with self._on_device():
            return super().predict_proba(source)

    def predict(self, X):
        """Predicted labels (of the type ``y`` had in ``fit``)."""
        proba = self.predict_proba(X)
        return self._classes[np.argmax(proba, axis=1)]

    def decision_function(self, X):
        """Logits (before softmax), columns in ``classes_`` order.

        With two classes, sklearn's convention: one column, the logit of
        ``classes_[1]`` minus that of ``classes_[0]`` (positive = ``classes_[1]``).
        """
        source = self._predict_source(X)
        with self._on_device():
            logits = self.forward(source).cpu().numpy()
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def score(self, X, y, sample_weight=None):
        """Mean accuracy of ``predict(X)`` against ``y``."""
        from sklearn.metrics import accuracy_score

        return accuracy_score(y, self.predict(X), sample_weight=sample_weight)
