"""The drift reference timed in every group, and the steady malloc thresholds."""

import subprocess
import sys
import textwrap

import pytest
import torch

import devices
from devices import TimingPlan
from devices.allocator import steady_malloc
from devices.reference import reference_network

QUICK = TimingPlan.quick(rounds=2, calls=4)


def test_reference_network_is_fixed_and_leaves_the_seed_alone():
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    a, b = reference_network(3), reference_network(3)
    assert torch.equal(torch.rand(3), expected)  # the caller's random stream is untouched
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    assert not a.training
    for size in (16, 32, 64):  # any image size, one classifier
        assert a(torch.randn(1, 3, size, size)).shape == (1, 10)


@pytest.mark.parametrize("spec", ["torch:cpu", "ort:cpu"])
def test_every_group_times_the_reference(spec):
    pytest.importorskip("onnxruntime")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten())
    profiler = devices.get(spec, plan=QUICK)
    try:
        first = profiler.measure_many([net, net], (3, 16, 16))
        second = profiler.measure_many([net], (3, 16, 16))
    finally:
        profiler.close()
    assert first[0].reference_ms == first[1].reference_ms > 0  # one reference per group
    assert second[0].reference_ms > 0
    off = devices.get(spec, plan=QUICK.updated(reference=False)).measure(net, (3, 16, 16))
    assert off.reference_ms is None


def test_fingerprint_records_the_allocator_setting():
    fp = devices.get("torch:cpu").fingerprint()
    assert fp["malloc"] == steady_malloc()
    if sys.platform.startswith("linux"):
        assert fp["malloc"].startswith("glibc mmap_threshold=")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_steady_malloc_removes_per_call_page_faults():
    """A forward pass whose activations are ~2 MB: with glibc's default thresholds the
    buffers are mapped afresh on every call (page faults); with steady_malloc they are not."""
    script = textwrap.dedent("""
        import resource, sys, torch
        if sys.argv[1] == "steady":
            from devices.allocator import steady_malloc
            steady_malloc()
        torch.set_num_threads(1)
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 128, 3, padding=1), torch.nn.ReLU(),
                                  torch.nn.Conv2d(128, 128, 3, padding=1)).eval()
        x = torch.randn(1, 3, 64, 64)
        with torch.inference_mode():
            for _ in range(10):
                net(x)
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(20):
                net(x)
            print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
    """)
    faults = {}
    for mode in ("default", "steady"):
        out = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True,
                             check=True, timeout=120)
        faults[mode] = float(out.stdout.strip().splitlines()[-1])
    # default: ~1,000 faults per call here (every buffer mapped afresh); steady: 0 on an
    # idle machine, a few dozen at most when the kernel reclaims pages under load. Whether
    # glibc maps afresh is its own heuristic (its adaptive threshold, the process's
    # history): where it does not, there is nothing for steady_malloc to remove.
    if faults["default"] <= 100:
        pytest.skip(f"glibc's default thresholds kept the buffers mapped here "
                    f"({faults['default']:.0f} page faults per call), so the premise does not hold")
    assert faults["steady"] < faults["default"] / 10, faults
