"""bench_grid.py's sktransfer side on two source trees, alternated in fresh processes.

For a before/after figure of a change: ``--before`` is a checkout of the older
code (``git worktree add /tmp/before <commit>``), ``--after`` this tree. Each
run is ``bench_grid.py --child sktransfer`` with ``PYTHONPATH`` set to the tree,
so the same benchmark code drives both; it prints the GridSearchCV seconds and
the seconds spent scoring the folds (what predict-time prefix reuse shrinks).

    python benchmarks/grid_before_after.py --before /tmp/before --repeat 2
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import _common as c
import bench_grid

KEYS = ("grid_s", "score_s", "best_depth", "accuracy", "cache_hits", "cache_misses")


def main(argv=None) -> int:
    p = c.base_parser(__doc__.splitlines()[0], n_train=60, n_test=120, size=112, tint=0.3)
    p.add_argument("--before", required=True, help="source tree of the older code")
    p.add_argument("--after", default=str(Path(__file__).resolve().parents[1]),
                   help="source tree of the newer code (default: this checkout)")
    args = p.parse_args(argv)
    trees = {"before": args.before, "after": args.after}
    for name, tree in trees.items():
        if not (Path(tree) / "sktransfer" / "__init__.py").is_file():
            p.error(f"--{name} {tree!r} holds no sktransfer package (expected "
                    f"{tree}/sktransfer/__init__.py)")
    folder = c.with_weights(args)
    c.print_header(args, f"; freeze depths {bench_grid.DEPTHS}, cv=3, refit")
    runs: dict[str, list] = {"before": [], "after": []}
    saved = os.environ.get("PYTHONPATH")
    try:
        for r in range(args.repeat):
            for name in (["before", "after"] if r % 2 == 0 else ["after", "before"]):
                os.environ["PYTHONPATH"] = trees[name]
                res = c.run_child(bench_grid.__file__, "sktransfer", args)
                runs[name].append(res)
                print(f"  [{name}] run {r + 1}: " + ", ".join(f"{k}={res[k]}" for k in KEYS),
                      flush=True)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
        shutil.rmtree(folder, ignore_errors=True)
    rows = [("", "before", "after", "before / after")]
    for key, label in (("grid_s", "GridSearchCV, s (best)"), ("score_s", "scoring the folds, s (best)")):
        b, a = c.best(runs["before"], key), c.best(runs["after"], key)
        rows.append((label, f"{b:.2f}", f"{a:.2f}", f"{b / a:.2f}"))
    print()
    print(c.table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
