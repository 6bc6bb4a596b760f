"""List the search spaces, or sample architectures of one with their MACs and params.

The MACs/params range of a space is counted on ~100 built networks, which takes
minutes for the larger spaces; it does not change unless the space does. So the
ranges are computed once and kept: the ones shipped with hwnas
(``spaces/data/cost_ranges.json``), then a user cache
(``$HWNAS_CACHE_DIR`` or ``~/.cache/hwnas/cost_ranges.json``); ``--refresh``
recomputes them behind a progress bar and updates the user cache.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from hwnas.cli import _options

COMMAND = "spaces"
ORDER = 10
SHIPPED = Path(__file__).resolve().parents[2] / "spaces" / "data" / "cost_ranges.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="a space to sample from (default: list all)")
    parser.add_argument("--sample", type=int, default=5, metavar="K",
                        help="with NAME: print K sampled architectures (default 5)")
    parser.add_argument("--preset", default=None, help="space preset, e.g. fbnetv2's tiny/mobile")
    parser.add_argument("--input-size", type=int, default=None, metavar="PX", dest="input",
                        help="input resolution (default: the space's own)")
    _options.alias(parser, "--input", "input", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--range-samples", type=int, default=100, metavar="N",
                        help="architectures sampled per space for the MACs/params range (default 100)")
    _options.json_option(parser)
    parser.add_argument("--refresh", action="store_true",
                        help="recount the MACs/params ranges instead of using the kept ones")


def _load(name: str, preset: str | None):
    import spaces

    return spaces.get(name, preset=preset) if preset else spaces.get(name)


def user_cache() -> Path:
    root = os.environ.get("HWNAS_CACHE_DIR") or Path.home() / ".cache" / "hwnas"
    return Path(root) / "cost_ranges.json"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # a missing or damaged cache is recomputed, never trusted


def range_key(space: Any, input_size: int | None, samples: int, seed: int) -> str:
    return f"{space.key}|input={input_size or space.default_input_size}|n={samples}|seed={seed}"


def count_range(space: Any, input_size: int | None, samples: int, seed: int) -> dict[str, float]:
    costs = [space.cost(a, input_size) for a in space.sample_many(samples, seed)]
    macs = [c.macs / 1e6 for c in costs]
    params = [c.params / 1e6 for c in costs]
    return {"macs_min": min(macs), "macs_max": max(macs),
            "params_min": min(params), "params_max": max(params)}


def ranges(space_list: list[Any], input_size: int | None, samples: int, seed: int,
           refresh: bool, progress: bool = True) -> dict[str, dict[str, float]]:
    """Range per space key: kept ones unless ``refresh``; the rest counted (and kept)."""
    from tqdm import tqdm

    from spaces.core import OutputError, atomic_write

    kept = {} if refresh else {**_read(SHIPPED), **_read(user_cache())}
    keys = [range_key(s, input_size, samples, seed) for s in space_list]
    todo = [(s, k) for s, k in zip(space_list, keys) if k not in kept]
    if todo:
        for space, key in tqdm(todo, desc="counting MACs/params", unit="space",
                               disable=not progress, leave=False):
            kept[key] = count_range(space, input_size, samples, seed)
        cache = user_cache()
        try:
            atomic_write(cache, json.dumps({**_read(cache), **{k: kept[k] for _, k in todo}},
                                           indent=1, sort_keys=True))
        except OutputError:
            pass  # an unwritable cache only means counting again next time
    return {s.key: kept[k] for s, k in zip(space_list, keys)}


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    import spaces
    from spaces.errors import HwnasError

    from hwnas.cli import _checks

    if args.sample < 1 or args.range_samples < 1:
        raise HwnasError("--sample and --range-samples must be at least 1")
    _checks.count("--range-samples", args.range_samples)
    _checks.input_size("--input-size", args.input)
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
        if args.json:
            _options.print_json({"space": space.key, "decisions": len(space.decisions),
                                 "size": space.size, "input": list(space.input_shape(args.input)),
                                 "sample": rows})
            return 0
        print(f"{space.key}: {len(space.decisions)} decisions, {space.size:,} architectures, "
              f"input {space.input_shape(args.input)}")
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        return 0

    space_list = [_load(name, None) for name in spaces.names()]
    found = ranges(space_list, args.input, args.range_samples, args.seed, args.refresh)
    if args.json:
        _options.print_json([{"space": s.key, "decisions": len(s.decisions), "size": s.size,
                              "input": list(s.input_shape(args.input)), **found[s.key]}
                             for s in space_list])
        return 0
    rows = []
    for space in space_list:
        r = found[space.key]
        rows.append({
            "space": space.key,
            "decisions": len(space.decisions),
            "size": f"{space.size:.3e}" if space.size > 1e9 else f"{space.size:,}",
            "input": "x".join(map(str, space.input_shape(args.input))),
            "MACs (M) min-max": f"{r['macs_min']:.2f}-{r['macs_max']:.2f}",
            "params (M) min-max": f"{r['params_min']:.3f}-{r['params_max']:.3f}",
        })
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"(MACs = FlopCounterMode FLOPs / 2, over {args.range_samples} sampled architectures "
          f"per space, seed {args.seed}; counted once and kept, --refresh recounts)")
    return 0
