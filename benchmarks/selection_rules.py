"""Which selection rule should TransferClassifierCV use? Fold predictions, scored many ways.

    .venv/bin/python benchmarks/selection_rules.py record --tasks faces15 digits10 ...
    .venv/bin/python benchmarks/selection_rules.py compare --log small_data.log [...]
    .venv/bin/python benchmarks/selection_rules.py replay --log small_data.log [--min-diff ...]

``record`` fits ``TransferClassifierCV`` with its default candidates and folds on
``small_data.py``'s tasks and seeds, and saves every fold's predicted probabilities
(``--out``, one ``.npz`` per task and seed). ``compare`` replays the choice on those
predictions with each score (accuracy, minus the Brier score, minus the log-loss; and
"either": accuracy and Brier together, TransferClassifierCV's default) and each tolerance ``n_se`` of :func:`sktransfer.select_most_frozen`'s rule, and judges
each choice by the held-out accuracy of the chosen candidate, read from the
``freeze_depth=...`` lines of a ``small_data.py`` log of the same seeds (the
candidates' fits do not depend on the rule). It prints, per task, rule and
tolerance, the mean held-out accuracy of the choices and the regret against the best
candidate in hindsight. ``replay`` needs no recording: it applies the default rule
at each ``--min-diff`` to the fold scores a ``small_data.py --rows cv`` log prints
(three decimals, so its rounding acts as a floor of about 0.001 already) next to
the choice the run made. No target: this is the evidence behind the defaults.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import log_loss

sys.path.insert(0, str(Path(__file__).resolve().parent))
from small_data import MODELS, TASKS  # noqa: E402

from sktransfer import TransferClassifierCV  # noqa: E402
from sktransfer._selection import select, unresolved_frozen_rank  # noqa: E402

SCORES = ("accuracy", "brier", "log-loss")
TOLERANCES = (0.0, 0.5, 1.0)
EITHER = ["accuracy", "brier"]  # TransferClassifierCV's default scoring


def record(task: str, seed: int, out: Path) -> Path:
    """Fit TransferClassifierCV; save each (candidate, split)'s fold probabilities."""
    X, y, _, _ = TASKS[task](seed)
    saved, calls = {}, {}

    def recording_scorer(estimator, X_fold, y_fold):
        depth = estimator.freeze_depth
        split = calls[depth] = calls.get(depth, -1) + 1  # each candidate: once per split
        proba = estimator.predict_proba(X_fold)
        y_index = np.searchsorted(estimator.classes_, np.asarray(y_fold))
        saved[f"{depth}|{split}|proba"], saved[f"{depth}|{split}|y"] = proba, y_index
        return float(np.mean(proba.argmax(1) == y_index))

    TransferClassifierCV(random_state=seed, device="cpu", scoring=recording_scorer,
                         **MODELS[task]).fit(X, y)
    path = out / f"{task}_{seed}.npz"
    np.savez(path, **saved)
    print(f"  recorded {task} seed {seed}: {path}", flush=True)
    return path


def fold_score(proba: np.ndarray, y: np.ndarray, score: str) -> float:
    if score == "accuracy":
        return float(np.mean(proba.argmax(1) == y))
    onehot = np.eye(proba.shape[1])[y]
    if score == "brier":
        return -float(np.mean(((proba - onehot) ** 2).sum(1)))
    return -float(log_loss(y, proba, labels=np.arange(proba.shape[1])))


def test_accuracies(logs: list[str]) -> dict:
    """{(task, seed, depth): held-out accuracy} from small_data.py logs."""
    found = {}
    pattern = re.compile(r"\[(\w+) seed (\d+)\] freeze_depth=(\S+): ([\d.]+)")
    for log in logs:
        for m in pattern.finditer(Path(log).read_text()):
            found[(m.group(1), int(m.group(2)), m.group(3))] = float(m.group(4))
    return found


def compare(folder: Path, logs: list[str]) -> None:
    held_out = test_accuracies(logs)
    table = {}
    for path in sorted(folder.glob("*_*.npz")):
        task, seed = path.stem.rsplit("_", 1)
        data = np.load(path)
        depths = list(dict.fromkeys(k.split("|")[0] for k in data.files))
        n_splits = len({k.split("|")[1] for k in data.files})
        missing = [d for d in depths if (task, int(seed), d) not in held_out]
        if missing:
            print(f"  skipped {path.name}: no held-out accuracy for {missing} in the logs")
            continue
        best = max(held_out[(task, int(seed), d)] for d in depths)
        fold_scores = {score: np.array([[fold_score(data[f"{d}|{s}|proba"],
                                                    data[f"{d}|{s}|y"], score)
                                         for s in range(n_splits)] for d in depths])
                       for score in SCORES}  # (candidates, splits) per score
        results = {"params": [{"freeze_depth": d if d == "all" else int(d)} for d in depths]}
        for score in SCORES:
            for s in range(n_splits):
                results[f"split{s}_test_{score}"] = fold_scores[score][:, s]
        # each score alone, and "either" (accuracy and Brier together: TransferClassifierCV's
        # default, a deeper candidate clearly better by either one wins)
        for rule, scorer in [(score, score) for score in SCORES] + [("either", EITHER)]:
            for n_se in TOLERANCES:
                chosen = depths[select(results, n_se, unresolved_frozen_rank, scorer=scorer)]
                acc = held_out[(task, int(seed), chosen)]
                table.setdefault((task, rule, n_se), []).append((chosen, acc, best - acc))
    print("| task | score | n_se | choices | held-out accuracy | regret (max) |")
    print("|---|---|---|---|---|---|")
    for (task, score, n_se), rows in sorted(table.items()):
        regrets = [r[2] for r in rows]
        print(f"| {task} | {score} | {n_se} | {', '.join(r[0] for r in rows)} | "
              f"{np.mean([r[1] for r in rows]):.3f} | {np.mean(regrets):.3f} "
              f"({max(regrets):.3f}) |")


def logged_folds(logs: list[str]) -> dict:
    """{(task, seed): cv_results} from the fold lines of small_data.py ``--rows cv`` logs."""
    pattern = re.compile(r"\[(\w+) seed (\d+)\] cv folds freeze_depth=(\S+) (\w+): ([-\d. ]+)")
    found = {}
    for log in logs:
        for m in pattern.finditer(Path(log).read_text()):
            task, seed, depth, name = m.group(1), int(m.group(2)), m.group(3), m.group(4)
            folds = found.setdefault((task, seed), {})
            folds.setdefault(depth, {})[name] = [float(v) for v in m.group(5).split()]
    results = {}
    for key, folds in found.items():
        depths = list(folds)
        names = list(folds[depths[0]])
        res = {"params": [{"freeze_depth": d if d == "all" else int(d)} for d in depths]}
        for name in names:
            for s in range(len(folds[depths[0]][name])):
                res[f"split{s}_test_{name}"] = np.array([folds[d][name][s] for d in depths])
        results[key] = (depths, names, res)
    return results


def replay(logs: list[str], n_se: float, min_diffs: list[float]) -> None:
    """TransferClassifierCV's rule at each ``min_diff`` on logged fold scores (3 decimals)."""
    held_out = test_accuracies(logs)
    chosen_by_cv = {}
    pattern = re.compile(r"\[(\w+) seed (\d+)\] TransferClassifierCV: [\d.]+ \([\d.]+ s\) (\S+)")
    for log in logs:
        for m in pattern.finditer(Path(log).read_text()):
            chosen_by_cv[(m.group(1), int(m.group(2)))] = m.group(3)
    table = {}
    for (task, seed), (depths, names, res) in sorted(logged_folds(logs).items()):
        best = max(held_out[(task, seed, d)] for d in depths)
        row = table.setdefault(task, {"seeds": [], "logged": []})
        row["seeds"].append(seed)
        logged = chosen_by_cv.get((task, seed))
        row["logged"].append((logged, held_out[(task, seed, logged)] if logged else np.nan,
                              best))
        for min_diff in min_diffs:
            pick = depths[select(res, n_se, unresolved_frozen_rank, scorer=names,
                                 min_diff=min_diff)]
            acc = held_out[(task, seed, pick)]
            row.setdefault(min_diff, []).append((pick, acc, best))
    print(f"n_se={n_se}; 'logged': the choice TransferClassifierCV made in the run")
    print("| task | seeds | min_diff | choices | held-out accuracy | regret (max) |")
    print("|---|---|---|---|---|---|")
    for task, row in table.items():
        for label in ["logged"] + list(min_diffs):
            picks = row[label]
            regrets = [b - a for _, a, b in picks]
            print(f"| {task} | {min(row['seeds'])}-{max(row['seeds'])} | {label} | "
                  f"{', '.join(str(p) for p, _, _ in picks)} | "
                  f"{np.mean([a for _, a, _ in picks]):.3f} | {np.mean(regrets):.3f} "
                  f"({max(regrets):.3f}) |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="fit TransferClassifierCV, save fold predictions")
    rec.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    rec.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    rec.add_argument("--out", type=Path, default=Path("selection_rules"))
    cmp_ = sub.add_parser("compare", help="replay the rules on saved fold predictions")
    cmp_.add_argument("--out", type=Path, default=Path("selection_rules"))
    cmp_.add_argument("--log", nargs="+", required=True,
                      help="small_data.py output(s) with the candidates' held-out accuracies")
    rep = sub.add_parser("replay", help="the default rule at several min_diff values, on the "
                                        "fold scores a small_data.py --rows cv log printed")
    rep.add_argument("--log", nargs="+", required=True)
    rep.add_argument("--n-se", type=float, default=0.5)
    rep.add_argument("--min-diff", nargs="+", type=float, default=[0.0, 0.005, 0.01, 0.02])
    args = parser.parse_args(argv)
    if args.command == "replay":
        replay(args.log, args.n_se, args.min_diff)
    elif args.command == "record":
        torch.set_num_threads(1)
        args.out.mkdir(parents=True, exist_ok=True)
        for task in args.tasks:
            for seed in args.seeds:
                record(task, seed, args.out)
    else:
        compare(args.out, args.log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
