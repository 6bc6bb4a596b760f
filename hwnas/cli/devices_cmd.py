"""List the profiling backends, which of them run on this machine and why the others cannot."""

from __future__ import annotations

import argparse

COMMAND = "devices"
ORDER = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads the fingerprints are computed for (default 1)")
    parser.add_argument("--json", action="store_true",
                        help="print the backends as one JSON list (alone on stdout) instead of tables")


def left_aligned(rows: list[dict[str, str]]) -> str:
    """A plain text table with left-aligned columns (long reasons read better that way)."""
    if not rows:
        return ""
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    lines = ["  ".join(k.ljust(widths[k]) for k in keys).rstrip()]
    lines += ["  ".join(str(r[k]).ljust(widths[k]) for k in keys).rstrip() for r in rows]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import devices
    from hwnas.cli import _checks

    _checks.at_least("--threads", args.threads, 1, 1024)

    rows, fingerprints = [], {}
    for status in devices.available():
        row = {"device": status.spec, "available": "yes" if status.available else "no",
               "id": "", "label / reason": status.reason}
        if status.available:
            fp = devices.get(status.spec, threads=args.threads).fingerprint()
            fingerprints[status.spec] = fp
            row["id"], row["label / reason"] = fp["id"], fp["label"]
        rows.append(row)
    if args.json:
        from hwnas.cli._options import print_json

        print_json([{**row, "fingerprint": fingerprints.get(row["device"])} for row in rows])
        return 0
    print(left_aligned(rows))
    for spec, fp in fingerprints.items():
        print(f"\n{spec} fingerprint [{fp['id']}]:")
        for key, value in fp.items():
            if key not in ("id", "label"):
                print(f"  {key:<16} {value}")
    return 0
