"""Speech transfer on offline synthetic speech (eSpeak NG, ``sktransfer_audio.spoken_words``).

Keyword spotting on unseen voices: 10 words (Speech Commands' yes/no/up/down/...),
``--train-speakers`` voices to train on, ``--test-speakers`` other voices to test on
(never heard in training), one utterance of each word per voice; the mean of
``--seeds`` seeds (each draws new voices). Methods:

* ``mfcc+lr``   MFCC statistics (20 coefficients and their deltas: mean and std over
  time) + StandardScaler + LogisticRegression: the classic baseline;
* ``fe+lr``     ``FeatureExtractor("audio/efficientnet_lite0")`` + LogisticRegression;
* ``grid``      ``GridSearchCV(TransferClassifier("audio/efficientnet_lite0"),
  freeze_depth)`` with speaker-grouped 2-fold CV: test accuracy of the refitted best
  candidate (its choice is printed);
* ``hand-loop`` a hand-written torch loop on the same network and input (the
  ImageNet EfficientNet-Lite0 blocks + a linear head on the same log-mel images):
  every layer trained (BatchNorm in training mode), AdamW at ``--hand-lr`` (1e-3,
  the classifier's lr), cosine schedule, the same epochs and batch size.

Speaker identification: ``--sid-speakers`` voices, each saying all 10 words twice;
train on five words, test on the other five (text-independent):

* ``mfcc+lr``   as above;
* ``resemblyzer+lr``  ``FeatureExtractor("resemblyzer")`` (the GE2E speaker
  encoder's 256-d embedding) + LogisticRegression.

Targets (exit status 1 and a MISSED line when missed): on keywords, the best transfer
method beats mfcc+lr by >= 0.1 and grid >= hand-loop - 0.01.

The speech is synthetic: no real recorded speech is available offline here, so the
numbers say how the methods compare, not what they reach on real recordings.

    .venv/bin/python benchmarks/speech_transfer.py              # the full table (~20 min)
    .venv/bin/python benchmarks/speech_transfer.py --seeds 1 --methods mfcc+lr fe+lr
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import torch

BACKBONE = "audio/efficientnet_lite0"
GRID = {"freeze_depth": ["all", 6, 3, 0]}


# -- the baseline ---------------------------------------------------------------------
def mfcc_stats(waves, sample_rate=16000, n_mfcc=20):
    """MFCC (log-mel 40 bands -> DCT-II) and deltas: mean and std over time, per clip."""
    from scipy.fft import dct

    from sktransfer_audio import MelFrames

    frontend = MelFrames(clip_seconds=1.0, n_mels=40, target_dbfs=-1000.0)
    rows = []
    for wave in waves:
        logmel = torch.log(frontend(torch.as_tensor(wave)) + 1e-6).numpy()  # (T, 40)
        mfcc = dct(logmel, type=2, norm="ortho", axis=1)[:, :n_mfcc]
        delta = np.diff(mfcc, axis=0)
        rows.append(np.concatenate([mfcc.mean(0), mfcc.std(0), delta.mean(0), delta.std(0)]))
    return np.asarray(rows)


def lr_on(Ftr, ytr, Fte, yte):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000))
    return pipe.fit(Ftr, ytr).score(Fte, yte)


def run_mfcc(d, seed, epochs):
    return lr_on(mfcc_stats(d.X_train), d.y_train, mfcc_stats(d.X_test), d.y_test), ""


def run_fe_lr(d, seed, epochs, backbone=BACKBONE):
    from sktransfer import FeatureExtractor

    fe = FeatureExtractor(backbone, cache=False).fit(d.X_train)
    return lr_on(fe.transform(d.X_train), d.y_train, fe.transform(d.X_test), d.y_test), ""


def run_grid(d, seed, epochs):
    from sklearn.model_selection import GridSearchCV, GroupKFold

    from sktransfer import TransferClassifier

    clf = TransferClassifier(BACKBONE, max_epochs=epochs, batch_size=16, random_state=seed)
    search = GridSearchCV(clf, GRID, cv=GroupKFold(2))
    search.fit(d.X_train, d.y_train, groups=d.speakers_train)
    return search.score(d.X_test, d.y_test), f"freeze_depth={search.best_params_['freeze_depth']}"


def run_hand_loop(d, seed, epochs, batch_size=16, lr=1e-3):  # lr: --hand-lr
    """What a practitioner writes by hand: the same blocks, every layer trained."""
    from sktransfer import get_backbone

    torch.manual_seed(seed)
    backbone = get_backbone("efficientnet_lite0", weights="DEFAULT")
    frontend = get_backbone(BACKBONE, weights=None).preprocessing.frontend
    Xtr = torch.stack([frontend(torch.as_tensor(w)) for w in d.X_train])
    Xte = torch.stack([frontend(torch.as_tensor(w)) for w in d.X_test])
    classes = sorted(set(d.y_train))
    ytr = torch.tensor([classes.index(v) for v in d.y_train])
    net = torch.nn.Sequential(*backbone.blocks, backbone.pool,
                              torch.nn.Linear(backbone.num_features, len(classes)))
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * math.ceil(len(Xtr) / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(Xtr), generator=generator)
        for lo in range(0, len(order), batch_size):
            idx = order[lo:lo + batch_size]
            loss = torch.nn.functional.cross_entropy(net(Xtr[idx]), ytr[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    net.eval()
    with torch.inference_mode():
        pred = net(Xte).argmax(1).numpy()
    return float(np.mean(np.asarray(classes)[pred] == d.y_test)), ""


# -- speaker identification -------------------------------------------------------------
def speaker_split(seed, n_speakers):
    from sktransfer_audio import spoken_words
    from sktransfer_audio._speech import WORDS

    data = spoken_words(n_train_speakers=n_speakers, n_test_speakers=0, repeats=2,
                        random_state=1000 + seed)
    words = np.asarray(data.y_train)
    train = np.isin(words, WORDS[::2])  # five words to enrol, the other five to test
    X = np.asarray(data.X_train, dtype=object)
    from sklearn.utils import Bunch

    return Bunch(X_train=list(X[train]), y_train=data.speakers_train[train],
                 X_test=list(X[~train]), y_test=data.speakers_train[~train])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--train-speakers", type=int, default=12)
    parser.add_argument("--test-speakers", type=int, default=8)
    parser.add_argument("--sid-speakers", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--methods", nargs="+", default=["mfcc+lr", "fe+lr", "grid", "hand-loop"])
    parser.add_argument("--no-sid", dest="sid", action="store_false")
    parser.add_argument("--hand-lr", type=float, default=1e-3,
                        help="the hand-written loop's learning rate (every layer)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from sktransfer_audio import spoken_words

    print(f"# keywords: 10 words, {args.train_speakers} training voices, {args.test_speakers} "
          f"unseen test voices, 1 s clips at 16 kHz, {BACKBONE} on 64x101 log-mel images; "
          f"grid {GRID}, speaker-grouped cv=2, {args.epochs} epochs; torch threads "
          f"{torch.get_num_threads()}", flush=True)
    runners = {"mfcc+lr": run_mfcc, "fe+lr": run_fe_lr, "grid": run_grid,
               "hand-loop": run_hand_loop}
    results, sid = {}, {}
    for seed in range(args.seeds):
        data = spoken_words(n_train_speakers=args.train_speakers,
                            n_test_speakers=args.test_speakers, random_state=seed)
        for method in args.methods:
            t0 = time.perf_counter()
            extra = {"lr": args.hand_lr} if method == "hand-loop" else {}
            acc, note = runners[method](data, seed, args.epochs, **extra)
            seconds = time.perf_counter() - t0
            results.setdefault(method, []).append((acc, seconds, note))
            print(f"  keywords seed {seed} {method:<10} acc {acc:.3f} {seconds:7.1f}s {note}",
                  flush=True)
        if args.sid:
            d = speaker_split(seed, args.sid_speakers)
            for method, run in (("mfcc+lr", run_mfcc),
                                ("resemblyzer+lr", lambda d, s, e: run_fe_lr(d, s, e,
                                                                             "resemblyzer"))):
                t0 = time.perf_counter()
                acc, _ = run(d, seed, 0)
                sid.setdefault(method, []).append((acc, time.perf_counter() - t0))
                print(f"  speakers seed {seed} {method:<14} acc {acc:.3f}", flush=True)

    def cell(rows):
        accs = [r[0] for r in rows]
        return f"{np.mean(accs):.3f} ± {np.std(accs):.3f} ({np.mean([r[1] for r in rows]):.0f} s)"

    print(f"\n| task | chance | " + " | ".join(f"{m} acc (s)" for m in args.methods) + " |")
    print("|---|---:|" + "---:|" * len(args.methods))
    print(f"| keywords, unseen voices | 0.100 | "
          + " | ".join(cell(results[m]) for m in args.methods) + " |")
    if sid:
        print(f"\n| task | chance | " + " | ".join(f"{m} acc (s)" for m in sid) + " |")
        print("|---|---:|" + "---:|" * len(sid))
        print(f"| speaker id, {args.sid_speakers} voices, unseen words | "
              f"{1 / args.sid_speakers:.3f} | " + " | ".join(cell(sid[m]) for m in sid) + " |")
    if "grid" in results:
        print(f"\ngrid choices: {[r[2] for r in results['grid']]}")
    mean = {m: float(np.mean([r[0] for r in rows])) for m, rows in results.items()}
    failed = []
    transfer = [m for m in mean if m != "mfcc+lr"]
    if "mfcc+lr" in mean and transfer:
        best = max(transfer, key=mean.get)
        if mean[best] < mean["mfcc+lr"] + 0.1:
            failed.append(f"best transfer ({best} {mean[best]:.3f}) < mfcc+lr "
                          f"({mean['mfcc+lr']:.3f}) + 0.1")
    if {"grid", "hand-loop"} <= set(mean) and mean["grid"] < mean["hand-loop"] - 0.01:
        failed.append(f"grid ({mean['grid']:.3f}) < hand-loop ({mean['hand-loop']:.3f}) - 0.01")
    if failed:
        print("\nMISSED: " + "; ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
