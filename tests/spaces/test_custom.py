"""Define-by-run spaces (spaces.builder): a builder function found by spec or entry point."""

import pickle
import textwrap

import numpy as np
import pytest
import torch

import spaces
from spaces import Arch, InvalidArchitecture
from spaces.builder import UNUSED, BuilderSpace
from spaces.errors import BuilderError

from tests.spaces.builder_sources import plain

PLAIN = plain()

# depth decides how many per-layer kernels exist; the head decides whether se_ratio exists
CONDITIONAL = '''
import torch.nn as nn

def build(choice, num_classes):
    depth = choice("depth", [1, 2, 3])
    width = choice("width", [8, 16])
    layers, c = [], 3
    for i in range(depth):
        k = choice(f"k{i}", [3, 5])
        layers += [nn.Conv2d(c, width, k, padding=k // 2), nn.ReLU()]
        c = width
    if choice("head", ["plain", "se"]) == "se":
        r = choice("se_ratio", [2, 4])
        layers += [nn.Conv2d(c, c // r, 1), nn.ReLU(), nn.Conv2d(c // r, c, 1)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
    return nn.Sequential(*layers)
'''


def write(folder, name, source):
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture
def plain(tmp_path):
    return spaces.get(f"{write(tmp_path, 'plain.py', PLAIN)}:build")


@pytest.fixture
def cond(tmp_path):
    return spaces.get(f"{write(tmp_path, 'cond.py', CONDITIONAL)}:build")


def test_decisions_are_discovered_in_call_order(plain, tmp_path):
    assert [d.name for d in plain.decisions] == ["width", "kernel", "depth"]
    assert [d.options for d in plain.decisions] == [("16", "32", "64"), ("3", "5"), ("1", "2", "3")]
    assert plain.size == 18 and plain.conditional == frozenset()
    assert plain.name == f"{(tmp_path / 'plain.py').resolve()}:build"
    assert plain.input_shape() == (3, 32, 32) and plain.input_shape(16) == (3, 16, 16)


def test_string_form_is_readable_and_round_trips(plain):
    arch = plain.from_string("width=32,kernel=5,depth=2")
    assert arch.choices == (1, 1, 1)
    assert plain.to_string(arch) == "width=32,kernel=5,depth=2"
    assert plain.from_string(" depth=2 , width=32,kernel=5") == arch  # any order, spaces
    for a in plain.sample_many(18, 0):
        assert plain.from_string(plain.to_string(a)) == a


@pytest.mark.parametrize("text,reason", [
    ("width=32,kernel=5", "missing"),
    ("width=32,kernel=7,depth=2", "unknown option '7'"),
    ("width=32,kernel=5,depth=2,extra=1", "unknown decision 'extra'"),
    ("width=32,width=16,kernel=5,depth=2", "given twice"),
    ("width 32", "is not NAME=OPTION"),
])
def test_malformed_strings_name_the_problem(plain, text, reason):
    with pytest.raises(InvalidArchitecture, match=reason):
        plain.from_string(text)


def test_cost_is_counted_as_for_builtin_spaces(plain):
    # conv 3->16, 3x3, 32x32 output: 16*3*9*1024 MACs; linear 16->10: 160 MACs
    cost = plain.cost(plain.from_string("width=16,kernel=3,depth=1"))
    assert cost.macs == 16 * 3 * 9 * 32 * 32 + 16 * 10
    assert cost.params == (3 * 16 * 9 + 16) + (16 * 10 + 10)
    assert plain.cost(plain.from_string("width=16,kernel=3,depth=1"), input_size=16).macs == \
        16 * 3 * 9 * 16 * 16 + 160


def test_build_returns_the_chosen_network(plain):
    net = plain.build(plain.from_string("width=64,kernel=5,depth=3"), num_classes=7)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3 and convs[0].out_channels == 64 and convs[0].kernel_size == (5, 5)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 7)


def test_pickled_by_value_and_usable_after(plain):
    data = pickle.dumps(plain)
    assert b"Conv2d" not in data and len(data) < 500  # the spec, not the function or a network
    copy = pickle.loads(data)
    assert copy.decisions == plain.decisions and copy.name == plain.name
    arch = plain.sample(3)
    assert copy.to_string(arch) == plain.to_string(arch)


def test_builder_defaults_set_the_space_defaults(tmp_path):
    path = write(tmp_path, "sized.py", '''
        import torch.nn as nn

        def build(choice, num_classes=5, input_size=24, in_channels=1):
            w = choice("w", [4, 8])
            return nn.Sequential(nn.Conv2d(in_channels, w, 3), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(w, num_classes))
    ''')
    space = spaces.get(f"{path}:build")
    assert (space.default_num_classes, space.default_input_size, space.in_channels) == (5, 24, 1)
    assert space.input_shape() == (1, 24, 24)
    wide = spaces.get(f"{path}:build", in_channels=3)
    assert wide.input_shape() == (3, 24, 24) and wide.key == f"{space.name}(in_channels=3)"
    assert wide.build(wide.sample(0))(torch.zeros(1, 3, 24, 24)).shape == (1, 5)


def test_module_spec(tmp_path, monkeypatch):
    package = tmp_path / "mynets"
    package.mkdir()
    (package / "__init__.py").write_text("")
    write(package, "family.py", PLAIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    space = spaces.get("mynets.family:build")
    assert space.name == "mynets.family:build" and space.size == 18
    assert pickle.loads(pickle.dumps(space)).decisions == space.decisions


def test_entry_point_group_registers_spaces(tmp_path, monkeypatch):
    write(tmp_path, "epnets.py", PLAIN)
    info = tmp_path / "epnets-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: epnets\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[hwnas.spaces]\nepnet = epnets:build\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "epnet" in spaces.names()
    space = spaces.get("epnet")
    assert space.name == "epnet" and space.key == "epnet" and space.size == 18
    arch = space.from_string("width=16,kernel=3,depth=1")
    assert arch.space == "epnet"
    assert pickle.loads(pickle.dumps(space)).to_string(arch) == "width=16,kernel=3,depth=1"


# ---- conditional decisions ----------------------------------------------------------------

def test_conditional_decisions_get_an_unused_option(cond):
    names = [d.name for d in cond.decisions]
    assert names == ["depth", "width", "k0", "k1", "k2", "head", "se_ratio"]
    assert cond.conditional == frozenset({"k1", "k2", "se_ratio"})
    assert cond.decisions[3].options == ("3", "5", UNUSED)
    assert cond.decisions[2].options == ("3", "5")  # k0 always applies
    # depth 1: 2 widths x 2 k0 x (plain + 2 se ratios) = 12; depth 2: 24; depth 3: 48
    assert cond.size == 12 + 24 + 48


def test_conditional_archs_hold_unused_exactly_where_a_decision_does_not_apply(cond):
    short = cond.from_string("depth=1,width=8,k0=3,head=plain")
    assert [cond.decisions[i].options[c] for i, c in enumerate(short.choices)] == \
        ["1", "8", "3", UNUSED, UNUSED, "plain", UNUSED]
    assert cond.to_string(short) == "depth=1,width=8,k0=3,head=plain"
    with pytest.raises(InvalidArchitecture, match="'k2'.*does not apply"):
        cond.from_string("depth=1,width=8,k0=3,k2=5,head=plain")
    with pytest.raises(InvalidArchitecture, match="'k1'.*applies here"):
        cond.from_string("depth=2,width=8,k0=3,head=plain")
    with pytest.raises(InvalidArchitecture, match="'k1'"):
        cond.validate(Arch(cond.name, (1, 0, 0, 2, 2, 0, 2)))


def test_conditional_sampling_mutation_and_neighbours_stay_valid(cond):
    rng = np.random.default_rng(0)
    seen = set()
    for arch in cond.sample_many(40, rng):
        assert cond.is_valid(arch)
        child = cond.mutate(arch, rng)
        assert cond.is_valid(child) and child != arch
        for n in cond.neighbours(arch):
            assert cond.is_valid(n) and n != arch
        seen.add(arch)
    assert len(cond.sample_many(1000, 1)) == cond.size == 84  # every member is reachable


def test_conditional_one_hot_tokens_and_build(cond):
    arch = cond.from_string("depth=3,width=16,k0=5,k1=3,k2=5,head=se,se_ratio=4")
    assert cond.one_hot(arch).sum() == len(cond.decisions)
    assert cond.from_tokens(cond.tokens(arch)) == arch
    net = cond.build(arch)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == 5
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_define_asks_only_the_decisions_that_apply(cond, plain):
    asked = []

    def pick(name, options):
        asked.append((name, options))
        return len(options) - 1

    arch = cond.define(pick)
    assert cond.to_string(arch) == "depth=3,width=16,k0=5,k1=5,k2=5,head=se,se_ratio=4"
    assert ("k1", ("3", "5")) in asked  # real options only, never "unused"
    asked.clear()
    arch = cond.define(lambda name, options: 0)
    assert cond.to_string(arch) == "depth=1,width=8,k0=3,head=plain"
    assert plain.to_string(plain.define(lambda name, options: 1)) == "width=32,kernel=5,depth=2"


# ---- bad builders -------------------------------------------------------------------------

BAD = {
    "wrong signature": ("def build(choice):\n    return None\n", "must take (choice, num_classes)"),
    "raises": ("def build(choice, num_classes):\n    choice('w', [1, 2])\n    raise ValueError('boom')\n",
               "raised ValueError: boom"),
    "not a module": ("def build(choice, num_classes):\n    choice('w', [1, 2])\n    return 3\n",
                     "returned int, not a torch.nn.Module"),
    "empty options": ("def build(choice, num_classes):\n    choice('w', [])\n", "with no options"),
    "not a list": ("def build(choice, num_classes):\n    choice('w', {1, 2})\n",
                   "with a set; give a list of options"),
    "repeated name": ("def build(choice, num_classes):\n    choice('w', [1])\n    choice('w', [2])\n",
                      "twice in one build"),
    "no decisions": ("import torch.nn as nn\ndef build(choice, num_classes):\n    return nn.Identity()\n",
                     "never calls choice"),
    "options depend on a choice": (
        "import torch.nn as nn\ndef build(choice, num_classes):\n    w = choice('w', [1, 2])\n"
        "    choice('v', [w, 2 * w])\n    return nn.Identity()\n", "different options"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_builders_are_one_sentence_naming_file_and_function(tmp_path, case):
    source, reason = BAD[case]
    path = write(tmp_path, "bad.py", source)
    with pytest.raises(BuilderError) as info:
        spaces.get(f"{path}:build")
    message = str(info.value)
    assert reason in message and "\n" not in message
    assert "bad.py" in message


def test_missing_file_module_and_function(tmp_path):
    with pytest.raises(BuilderError, match="nope.py does not exist"):
        spaces.get(f"{tmp_path / 'nope.py'}:build")
    with pytest.raises(BuilderError, match="no module 'no_such_pkg.mod'"):
        spaces.get("no_such_pkg.mod:build")
    path = write(tmp_path, "plain.py", PLAIN)
    with pytest.raises(BuilderError, match="has no 'make'"):
        spaces.get(f"{path}:make")
    with pytest.raises(BuilderError, match="takes no option 'preset'"):
        spaces.get(f"{path}:build", preset="tiny")


def test_builder_space_class_takes_a_function_object(tmp_path):
    path = write(tmp_path, "plain.py", PLAIN)
    space = BuilderSpace(f"{path}:build")
    assert space.size == 18
