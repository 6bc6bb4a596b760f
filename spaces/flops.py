"""MACs and parameter counting with torch's own ``FlopCounterMode``."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from spaces.base import Cost


def count_cost(module: torch.nn.Module, input_shape: tuple[int, ...]) -> Cost:
    """Count one batch-1 forward pass. FlopCounterMode reports 2 FLOPs per
    multiply-add (conv, linear, matmul), so MACs are half its total."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(torch.zeros((1, *input_shape)))
    finally:
        module.train(was_training)
    params = sum(p.numel() for p in module.parameters())
    return Cost(macs=int(counter.get_total_flops()) // 2, params=int(params))
