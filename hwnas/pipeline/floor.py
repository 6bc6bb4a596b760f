"""What the space can reach at best, checked before a run folder is written.

A latency budget below anything the space can run at on the device, or a MACs
budget below its cheapest network, can never be met: it is refused in one sentence
before any folder, store row or training exists. The floor is the space's cheapest
network by counted MACs (coordinate descent over the decisions, exact for costs
that grow with every decision, as MACs do), timed once on the device.
"""

from __future__ import annotations

from typing import Any

from hwnas.pipeline.choosing import split_budgets
from hwnas.pipeline.settings import BadSetting, PipelineSettings
from spaces import Arch, Space

# A latency budget below FLOOR_SLACK x the floor's measurement is refused: the cheapest
# network by MACs need not be the fastest, and one quick timing is noisy, so only
# budgets clearly out of reach are refused here; the rest is the budget loop's to judge.
FLOOR_SLACK = 0.8


def cheapest_arch(space: Space, input_size: int, num_classes: int, max_passes: int = 3) -> tuple[Arch, int]:
    """(arch, MACs) of the network with the fewest counted MACs (coordinate descent)."""
    from hwnas.oneshot.samplers import greedy_extreme

    memo: dict[Arch, int] = {}

    def macs(arch: Arch) -> int:
        if arch not in memo:
            memo[arch] = int(space.cost(arch, input_size, num_classes).macs)
        return memo[arch]

    arch = greedy_extreme(space, macs, largest=False, max_passes=max_passes)
    return arch, macs(arch)


def check_reachable(settings: PipelineSettings, space: Space, meter: Any, input_size: int,
                    num_classes: int) -> None:
    """BadSetting (one sentence) for budgets the space cannot reach on the device."""
    latency, macs_budget = split_budgets(settings)
    if not latency and macs_budget is None:
        return
    arch, floor_macs = cheapest_arch(space, input_size, num_classes)
    if macs_budget is not None and macs_budget < floor_macs:
        raise BadSetting(f"macs<={macs_budget:g} is below anything {space.key} can reach: its "
                         f"cheapest network has {floor_macs:,} MACs at {input_size}x{input_size}")
    if not latency:
        return
    profiler = meter.profiler()
    try:
        floor_ms = float(profiler.measure(space.build(arch, num_classes, input_size),
                                          tuple(space.input_shape(input_size))).latency_ms)
    finally:
        profiler.close()
    lowest = min(latency)
    if lowest < FLOOR_SLACK * floor_ms:
        raise BadSetting(f"latency_ms<={lowest:g} is below anything {space.key} can reach on "
                         f"{meter.label}: its cheapest network measured {floor_ms:.4g} ms; ask for "
                         f"at least {floor_ms:.3g} ms")
