"""Train a one-shot supernet once, then evaluate or export any of its networks.

``hwnas supernet train --space nb201 --sampler sandwich --epochs 30 -o nb201.ckpt``
trains the weight-sharing supernet of a space (hwnas.oneshot; ``--resume`` continues
a killed training from its last checkpoint); ``eval CKPT --arch A`` prints that
architecture's inherited accuracy (BN recalibrated) and the dataset's name;
``export CKPT --arch A -o model.onnx`` writes it as a verified ONNX file with the
inherited weights (``--finetune-epochs`` to fine-tune them first). The checkpoint
names its space, preset, input size and dataset, so eval and export rebuild them.
Data-parallel training: ``torchrun --nproc-per-node N -m hwnas supernet train ...``.
``train --objective smash`` trains a SMASH hypernetwork (hwnas.oneshot.smash) that
generates each architecture's weights; eval and export of its checkpoint use the
generated weights.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hwnas.cli import _options

COMMAND = "supernet"
ORDER = 55


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = sub.add_parser("train", help="train a one-shot supernet and write its checkpoint")
    _options.space_options(train, default="fbnetv2")
    train.add_argument("--dataset", default="digits", help="dataset (default digits)")
    train.add_argument("--data-root", help="folder holding CIFAR (nothing is downloaded)")
    train.add_argument("--max-samples", type=int, metavar="N", help="use at most N images")
    train.add_argument("--objective", default="labels",
                       help="labels (default); pi: Pi-NAS, no labels -- two sampled paths on two "
                            "augmented views agree with a mean teacher (uniform sampler); smash: "
                            "SMASH, a hypernetwork generates each sampled architecture's weights "
                            "and is trained through them (uniform sampler; nb201 and fbnetv2)")
    train.add_argument("--hidden", type=int, metavar="H",
                       help="smash: the hypernetwork's hidden width (default 16 for fbnetv2, "
                            "8 for nb201)")
    train.add_argument("--sampler", default=None,
                       help="sandwich (BigNAS, default), uniform (SPOS), path_dropout (One-Shot), "
                            "attentive (AttentiveNAS), enas (ENAS: an LSTM controller trained "
                            "alternately with the weights), parsec (PARSEC: a learned "
                            "distribution, one architecture per step)")
    train.add_argument("--memory-buffer", type=int, metavar="N",
                       help="enas: train the controller with a buffer of the last N sampled "
                            "architectures (the fix of 'Understanding NAS Techniques')")
    train.add_argument("--entropy-weight", type=float, metavar="W",
                       help="enas: weight of the controller's entropy bonus (default 1e-4)")
    train.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    train.add_argument("--batch-size", type=int, default=64, help="global batch (default 64)")
    train.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (default 0.05)")
    train.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    train.add_argument("--every-steps", type=int, metavar="N",
                       help="also checkpoint every N steps (default: every epoch)")
    train.add_argument("-o", "--output", required=True, metavar="CKPT", help="checkpoint to write")
    train.add_argument("--resume", action="store_true",
                       help="continue the training in CKPT from its last checkpoint")
    _options.json_option(train)
    ev = sub.add_parser("eval", help="inherited accuracy of an architecture")
    ev.add_argument("checkpoint", metavar="CKPT")
    ev.add_argument("--arch", required=True, action="append",
                    help="architecture string (repeatable)")
    ev.add_argument("--data-root", help="folder holding CIFAR (nothing is downloaded)")
    ev.add_argument("--seed", type=int, default=0, help="calibration seed (default 0)")
    _options.json_option(ev)
    ex = sub.add_parser("export", help="a verified ONNX file with inherited weights")
    ex.add_argument("checkpoint", metavar="CKPT")
    ex.add_argument("--arch", required=True, help="architecture string")
    ex.add_argument("-o", "--output", required=True, metavar="FILE.onnx")
    ex.add_argument("--finetune-epochs", type=int, default=0, metavar="N",
                    help="fine-tune the inherited weights for N epochs first (default 0)")
    ex.add_argument("--data-root", help="folder holding CIFAR (nothing is downloaded)")
    ex.add_argument("--seed", type=int, default=0, help="seed (default 0)")


# ---- rebuilding what a checkpoint names -----------------------------------------------------
def _from_checkpoint(path: str, data_root: str | None, seed: int
                     ) -> tuple[Any, Any, Any, dict, Any]:
    """(space, data, supernet with the checkpoint's weights, metadata, the SMASH
    hypernetwork of a "smash" checkpoint or None)."""
    import spaces
    from hwnas.evaluators import datasets
    from hwnas.oneshot import make_supernet
    from hwnas.oneshot.checkpoint import load_supernet, objective_name, read_meta
    from spaces.errors import HwnasError

    if not Path(path).is_file():
        raise HwnasError(f"checkpoint {path} not found")
    meta = read_meta(path)
    space = spaces.get(meta["space_key"])
    data = datasets.load(meta["dataset"], int(meta["input_size"]), space.in_channels,
                         root=data_root, seed=seed)
    supernet = make_supernet(space, data.num_classes, int(meta["input_size"]))
    if objective_name(meta) == "smash":
        from hwnas.oneshot.smash import load_smash

        return space, data, supernet.eval(), meta, load_smash(path, supernet, dataset=data.name)
    load_supernet(path, supernet, dataset=data.name)
    return space, data, supernet.eval(), meta, None


def sampler_name(meta: dict) -> str:
    sampler = meta.get("sampler")
    return str(sampler.get("name") if isinstance(sampler, dict) else sampler)


def _arch(space: Any, text: str) -> Any:
    return space.from_string(str(text).strip())


def _sampler_options(args: argparse.Namespace) -> dict[str, Any]:
    """The controller options of the enas sampler, checked before any data is loaded."""
    from spaces.errors import InvalidOption

    given = {"memory_buffer": args.memory_buffer, "entropy_weight": args.entropy_weight}
    given = {k: v for k, v in given.items() if v is not None}
    if given and args.sampler != "enas":
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise InvalidOption(f"the {args.sampler} sampler has no controller to configure with "
                            f"{flags} (the enas sampler has)")
    if args.memory_buffer is not None and args.memory_buffer < 1:
        raise InvalidOption(f"--memory-buffer must be a positive number of architectures, "
                            f"got {args.memory_buffer}")
    if args.entropy_weight is not None and not args.entropy_weight >= 0:
        raise InvalidOption(f"--entropy-weight must be at least 0, got {args.entropy_weight}")
    return given


# ---- actions ----------------------------------------------------------------------------
def _train(args: argparse.Namespace) -> int:
    import torch

    from hwnas.cli import _checks
    from hwnas.cli.profile_cmd import load_space
    from hwnas.evaluators import datasets
    from hwnas.oneshot import make_supernet
    from hwnas.oneshot.distributed import context, shutdown
    from hwnas.oneshot.samplers import SAMPLERS
    from hwnas.oneshot.training import train_supernet
    from spaces.errors import InvalidOption

    _checks.at_least("--epochs", args.epochs, 1, 100_000)
    _checks.at_least("--batch-size", args.batch_size, 2, 65_536)
    _checks.seed("--seed", args.seed)
    _checks.input_size("--input-size", args.input_size)
    _checks.count("--max-samples", args.max_samples)
    if args.objective not in ("labels", "pi", "smash"):
        raise InvalidOption(f"unknown --objective {args.objective!r}: choose labels, pi or smash")
    args.sampler = args.sampler or ("sandwich" if args.objective == "labels" else "uniform")
    if args.objective == "pi" and args.sampler != "uniform":
        raise InvalidOption(f"--objective pi samples its two paths uniformly: leave --sampler out "
                            f"or pass uniform, not {args.sampler}")
    if args.objective == "smash" and args.sampler != "uniform":
        raise InvalidOption(f"--objective smash samples one architecture a step uniformly: leave "
                            f"--sampler out or pass uniform, not {args.sampler}")
    if args.hidden is not None and args.objective != "smash":
        raise InvalidOption(f"--hidden sets the SMASH hypernetwork's width, so it goes with "
                            f"--objective smash, not {args.objective}")
    if args.hidden is not None:
        _checks.at_least("--hidden", args.hidden, 1, 4096)
    SAMPLERS.get(args.sampler)  # an unknown sampler: one sentence naming the known ones
    sampler_options = _sampler_options(args)
    name = args.space or "fbnetv2"
    space = load_space(name, args.preset or ("tiny" if name == "fbnetv2" else None),
                       args.space_opt)
    objective_options = None
    if args.objective == "smash":
        from hwnas.oneshot.smash import smash_options

        # a space without SMASH is refused before any data is loaded
        objective_options = smash_options(space, {"hidden": args.hidden})
    size = int(args.input_size or space.default_input_size)
    data = datasets.load(args.dataset, size, space.in_channels, root=args.data_root,
                         max_samples=args.max_samples, seed=args.seed)
    torch.manual_seed(args.seed)
    supernet = make_supernet(space, data.num_classes, size)
    result = train_supernet(supernet, data, args.sampler, args.epochs, batch_size=args.batch_size,
                            lr=args.lr, seed=args.seed, checkpoint=args.output,
                            resume=args.resume, every_steps=args.every_steps,
                            sampler_options=sampler_options, objective=args.objective,
                            objective_options=objective_options)
    main_rank = context().is_main
    shutdown()  # every rank leaves the data-parallel group together (no-op in one process)
    if not main_rank:
        return 0
    summary = {"checkpoint": str(args.output), "space": space.key, "input_size": size,
               "dataset": data.name, "sampler": args.sampler, "epochs": args.epochs,
               "steps": result.total_steps, "resumed_at_step": result.start_step,
               "seconds": round(result.seconds, 1), "last_loss": result.last_loss,
               "objective": args.objective}
    if objective_options:
        summary.update(objective_options)
    if args.json:
        _options.print_json(summary)
    elif not args.quiet:
        resumed = f", resumed at step {result.start_step}" if result.start_step else ""
        what = (f"SMASH hypernetwork (hidden {objective_options['hidden']}) and "
                if objective_options else "")
        print(f"trained {what}{space.key} supernet on {data.name} at {size}px: "
              f"{args.sampler} sampler, "
              f"{args.epochs} epochs ({result.total_steps} steps{resumed}) in "
              f"{result.seconds:.0f} s -> {args.output}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from hwnas.oneshot.checkpoint import objective_name
    from hwnas.oneshot.evaluate import inherited_accuracy
    from hwnas.oneshot.smash import WEIGHTS, smash_accuracy

    space, data, supernet, meta, hyper = _from_checkpoint(args.checkpoint, args.data_root,
                                                          args.seed)
    archs = [_arch(space, a) for a in args.arch]  # every string parses before any work

    probe = objective_name(meta) == "pi"  # no classifier was trained: a linear probe

    def score(arch: Any) -> float:
        if hyper is not None:
            return smash_accuracy(supernet, hyper, arch, data, seed=args.seed)
        if probe:
            from hwnas.oneshot.probe import probe_accuracy

            return probe_accuracy(supernet.extract(arch), data, seed=args.seed)
        return inherited_accuracy(supernet, arch, data, seed=args.seed)

    weights = (WEIGHTS if hyper is not None else
               "inherited from the supernet, trained without labels; accuracy of a linear probe "
               "on its frozen features" if probe else "inherited from the supernet")
    rows = [{"arch": space.to_string(a), "accuracy": score(a), "dataset": data.name,
             "split": f"validation ({len(data.y_val)} images)"} for a in archs]
    if args.json:
        _options.print_json({"checkpoint": str(args.checkpoint), "space": space.key,
                             "sampler": sampler_name(meta), "objective": objective_name(meta),
                             "weights": weights, "rows": rows})
        return 0
    how = (f"weights {WEIGHTS}" if hyper is not None else
           "linear probe on inherited features" if probe else "inherited weights")
    for row in rows:
        print(f"{row['accuracy']:6.2f}%  {row['arch']}  ({how}, BN recalibrated; "
              f"{data.name} {row['split']})")
    return 0


def _export(args: argparse.Namespace) -> int:
    from hwnas.oneshot.checkpoint import objective_name
    from hwnas.cli import _checks
    from hwnas.export import check_target, export_arch
    from hwnas.export_train import finetune_for_export
    from spaces.errors import HwnasError

    if args.finetune_epochs < 0:
        raise HwnasError(f"--finetune-epochs cannot be negative, got {args.finetune_epochs}")
    _checks.seed("--seed", args.seed)
    check_target(args.output)  # before any weights are read or tuned
    space, data, supernet, meta, hyper = _from_checkpoint(args.checkpoint, args.data_root,
                                                          args.seed)
    arch = _arch(space, args.arch)
    if objective_name(meta) == "pi" and args.finetune_epochs < 1:
        raise HwnasError(f"{args.checkpoint} was trained without labels (pi), so its classifier "
                         f"never learnt the classes: export with --finetune-epochs N (N >= 1)")
    if hyper is not None:  # the standalone network with the weights SMASH generates for it
        with hyper.loaded(supernet, arch):
            module = supernet.extract(arch).cpu().train()
        source = f"generated by the SMASH hypernetwork of {Path(args.checkpoint).name}"
    else:
        module = supernet.extract(arch).cpu().train()
        source = (f"inherited from supernet {Path(args.checkpoint).name} "
                  f"({sampler_name(meta)} sampler)")
    net = finetune_for_export(space, module, data, args.finetune_epochs, source=source,
                              input_size=int(meta["input_size"]), seed=args.seed)
    extra = {**net.deploy_metadata(), "trained": "supernet"}
    report = export_arch(space, arch, args.output, model=net.module, num_classes=data.num_classes,
                         input_size=int(meta["input_size"]), accuracy=net.accuracy,
                         measure=False, seed=args.seed, metadata=extra, data=data)
    print(f"wrote {args.output}: {space.to_string(arch)}, {net.accuracy:.2f}% on {data.name} "
          f"validation ({net.trained_on}); {report.macs:,} MACs")
    return 0


def run(args: argparse.Namespace) -> int:
    return {"train": _train, "eval": _eval, "export": _export}[args.action](args)
