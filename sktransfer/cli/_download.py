"""``sktransfer download``: fetch pretrained weights ahead of time, say where each went."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ._errors import PROG, CLIError, cli_message

__all__ = ["cmd_download"]


def cmd_download(args) -> int:
    from ..backbones import BACKBONES, download_weights, pretrained_weights

    if args.to is not None and Path(args.to).exists() and not Path(args.to).is_dir():
        raise CLIError(f"--to {args.to!r} is a file; give a folder (it is created if missing)",
                       code=2)
    for name in args.names:  # every name is checked before anything is fetched
        BACKBONES.check_name(name)
    failed = 0
    for name in args.names:
        try:
            stated = pretrained_weights(name, args.weights)
            if stated is None:
                raise ValueError(f"backbone {name!r} has no pretrained weights to download "
                                 f"(use --weights none)")
            was_here = args.to is None and stated.available()
            path = download_weights(name, args.weights, to=args.to, progress=not args.quiet)
        except (OSError, ValueError, LookupError) as exc:  # one name's failure: go on
            failed += 1
            print(f"{PROG} download: error: {cli_message(' '.join(str(exc).split()))}",
                  file=sys.stderr)
            continue
        if stated.module is not None:
            how = f"shipped by the pip package {stated.pip_name}: nothing to download"
        elif was_here:
            how = "already cached"
        else:
            how = "downloaded" if args.to is None else "ready to copy"
        print(f"{name}\t{path}\t({how})")
    if args.to is not None and failed < len(args.names):
        to = os.path.abspath(args.to)
        print(f"\nCopy {to} to the offline machine and set there:\n"
              f"  export TORCH_HOME={to}/torch HF_HUB_CACHE={to}/huggingface/hub "
              f"SKTRANSFER_OFFLINE=1", file=sys.stderr)
    return 1 if failed else 0
