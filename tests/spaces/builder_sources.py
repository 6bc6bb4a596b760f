"""Builder-function spaces as source text, for tests that write them to a file."""


def plain(widths=(16, 32, 64), kernels=(3, 5), depths=(1, 2, 3)) -> str:
    """width, kernel, depth: three decisions that always apply."""
    return f'''
import torch.nn as nn

def build(choice, num_classes):
    width = choice("width", {list(widths)})
    kernel = choice("kernel", {list(kernels)})
    depth = choice("depth", {list(depths)})
    layers = [nn.Conv2d(3, width, kernel, padding=kernel // 2), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Conv2d(width, width, kernel, padding=kernel // 2), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes)]
    return nn.Sequential(*layers)
'''


def per_layer_kernels(widths=(4, 8), kernels=(1, 3)) -> str:
    """depth decides how many per-layer kernel decisions exist (conditional decisions)."""
    return f'''
import torch.nn as nn

def build(choice, num_classes):
    depth = choice("depth", [1, 2, 3])
    width = choice("width", {list(widths)})
    layers, c = [], 3
    for i in range(depth):
        k = choice(f"k{{i}}", {list(kernels)})
        layers += [nn.Conv2d(c, width, k, padding=k // 2), nn.ReLU()]
        c = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))
'''
