"""List the search spaces, or sample architectures of one with their MACs and params."""

from __future__ import annotations

import argparse

COMMAND = "spaces"
ORDER = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="a space to sample from (default: list all)")
    parser.add_argument("--sample", type=int, default=5, metavar="K",
                        help="with NAME: print K sampled architectures (default 5)")
    parser.add_argument("--preset", default=None, help="space preset, e.g. fbnetv2's tiny/mobile")
    parser.add_argument("--input", type=int, default=None, metavar="SIZE",
                        help="input resolution (default: the space's own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--range-samples", type=int, default=100, metavar="N",
                        help="architectures sampled per space for the MACs/params range (default 100)")


def _load(name: str, preset: str | None):
    import spaces

    return spaces.get(name, preset=preset) if preset else spaces.get(name)


def run(args: argparse.Namespace) -> int:
    import pandas as pd
    import spaces
    from spaces.errors import HwnasError

    from hwnas.cli import _checks

    if args.sample < 1 or args.range_samples < 1:
        raise HwnasError("--sample and --range-samples must be at least 1")
    _checks.count("--range-samples", args.range_samples)
    _checks.input_size("--input", args.input)
    _checks.seed("--seed", args.seed)
    pd.set_option("display.width", 200)
    if args.name:
        space = _load(args.name, args.preset)
        sample = _checks.space_count(space, "--sample", args.sample)
        rows = []
        for arch in space.sample_many(sample, args.seed):
            cost = space.cost(arch, args.input)
            rows.append({"arch": space.to_string(arch), "MACs (M)": cost.macs / 1e6,
                         "params (M)": cost.params / 1e6})
        print(f"{space.key}: {len(space.decisions)} decisions, {space.size:,} architectures, "
              f"input {space.input_shape(args.input)}")
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        return 0

    rows = []
    for name in spaces.names():
        space = _load(name, None)
        costs = [space.cost(a, args.input) for a in space.sample_many(args.range_samples, args.seed)]
        macs = [c.macs / 1e6 for c in costs]
        params = [c.params / 1e6 for c in costs]
        rows.append({
            "space": space.key,
            "decisions": len(space.decisions),
            "size": f"{space.size:.3e}" if space.size > 1e9 else f"{space.size:,}",
            "input": "x".join(map(str, space.input_shape(args.input))),
            "MACs (M) min-max": f"{min(macs):.2f}-{max(macs):.2f}",
            "params (M) min-max": f"{min(params):.3f}-{max(params):.3f}",
        })
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"(MACs = FlopCounterMode FLOPs / 2, over {args.range_samples} sampled architectures "
          f"per space, seed {args.seed})")
    return 0
