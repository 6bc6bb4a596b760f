"""A fixed reference network timed in every interleaved group, to take the machine's drift out.

Why: interleaving makes the networks *of one group* comparable (a slow phase
hits them all alike), but a shared host's speed also drifts over minutes.
Measured on this machine (20 fbnet nets, two passes a few minutes apart): all
ten networks of one group came back 4-8% faster in the second pass, all ten of
the next group 0-4% slower -- so their absolute numbers disagreed by more than
5% while their ratios to each other held within 2-3%. Timing the same fixed
network in every group measures that drift; ``latency_ms * anchor_reference /
reference_ms`` (see :func:`latency.store.drift_corrected`; the anchor is the
device's first group) puts every group on one scale. The raw latency is always stored as measured; the correction is a
reading of it.

The network is small (three strided 3x3 conv blocks and a classifier; about
0.7 MMACs at 32x32) so it costs a few percent of a group's time, and it is
fully convolutional with global pooling, so it runs on any input shape the group
uses. Its weights come from a fixed seed: every process builds the same network.
"""

from __future__ import annotations

from typing import Any

REFERENCE_NAME = "hwnas-reference-v1"


def reference_network(in_channels: int = 3) -> Any:
    """The fixed reference module (eval mode) for inputs with ``in_channels`` channels."""
    import torch
    from torch import nn

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(20261123)
        layers: list[nn.Module] = []
        width = in_channels
        for out in (16, 32, 64):
            layers += [nn.Conv2d(width, out, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            width = out
        net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))
    finally:
        torch.random.set_rng_state(state)  # building it never disturbs the caller's seed
    return net.eval()
