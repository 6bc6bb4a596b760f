"""The Space contract, checked on a tiny toy space with one rule."""

import numpy as np
import pytest
import torch

import spaces
from spaces import Arch, Decision, InvalidArchitecture, Space, UnknownName
from spaces.base import IndexStrings


class ToySpace(IndexStrings, Space):
    """3 decisions; rule: not all three may be option 0 (so size = 2*3*2 - 1)."""

    name = "toy"
    decisions = (Decision("a", ("x", "y")), Decision("b", ("p", "q", "r")), Decision("c", ("u", "v")))
    in_channels = 1
    default_input_size = 4

    @property
    def size(self) -> int:
        return 2 * 3 * 2 - 1

    def _check_rules(self, arch):
        if arch.choices == (0, 0, 0):
            raise InvalidArchitecture(self.name, "all-zero is forbidden", "a")

    def _build(self, arch, num_classes, input_size):
        width = 2 + sum(arch.choices)
        return torch.nn.Sequential(torch.nn.Conv2d(1, width, 3, padding=1), torch.nn.Flatten(),
                                   torch.nn.Linear(width * input_size * input_size, num_classes))


@pytest.fixture
def toy():
    return ToySpace()


def test_validate_names_decision_and_reason(toy):
    with pytest.raises(InvalidArchitecture, match="decision 'b'.*out of range"):
        toy.validate(Arch("toy", (0, 3, 0)))
    with pytest.raises(InvalidArchitecture, match="expected 3 choices"):
        toy.validate(Arch("toy", (0, 1)))
    with pytest.raises(InvalidArchitecture, match="space 'other'"):
        toy.validate(Arch("other", (0, 1, 0)))
    with pytest.raises(InvalidArchitecture, match="forbidden"):
        toy.validate(Arch("toy", (0, 0, 0)))


def test_sampling_respects_rules_and_covers_space(toy):
    archs = toy.sample_many(toy.size, rng=0)
    assert len(set(archs)) == toy.size == 11
    assert Arch("toy", (0, 0, 0)) not in archs


def test_mutate_changes_exactly_one_decision(toy):
    rng = np.random.default_rng(0)
    for _ in range(200):
        arch = toy.sample(rng)
        child = toy.mutate(arch, rng)
        assert sum(a != b for a, b in zip(arch.choices, child.choices)) == 1
        assert toy.is_valid(child)


def test_neighbours_are_all_valid_one_step_moves(toy):
    arch = toy.arch((1, 0, 0))
    got = set(toy.neighbours(arch))
    # a: 0 is forbidden (0,0,0); b: 2 moves; c: 1 move.
    assert got == {Arch("toy", (1, 1, 0)), Arch("toy", (1, 2, 0)), Arch("toy", (1, 0, 1))}


def test_one_hot_and_tokens_round_trip(toy):
    arch = toy.arch((1, 2, 0))
    vec = toy.one_hot(arch)
    assert vec.tolist() == [0, 1, 0, 0, 1, 1, 0]
    assert toy.tokens(arch) == [1, 4, 5]
    assert toy.from_tokens(toy.tokens(arch)) == arch


def test_arch_json_round_trip():
    arch = Arch("toy", (1, 2, 0))
    assert Arch.from_json(arch.to_json()) == arch
    assert hash(arch) == hash(Arch("toy", [1, 2, 0]))


def test_cost_counts_macs_as_half_the_flops(toy):
    arch = toy.arch((1, 0, 0))  # width 3: conv 1->3, 3x3 kernel on 4x4, linear 48->10
    cost = toy.cost(arch)
    assert cost.macs == 3 * 9 * 16 + 48 * 10
    assert cost.params == (3 * 9 + 3) + (48 * 10 + 10)


def test_registry_lists_the_four_spaces_and_rejects_unknown():
    assert {"nb201", "fbnet", "fbnetv2", "nao"} <= set(spaces.names())
    with pytest.raises(UnknownName, match="unknown space 'nope'"):
        spaces.get("nope")


@pytest.mark.parametrize("size", [0, -1, 10**6, 2.5, True])
def test_bad_input_sizes_are_one_sentence(size):
    import spaces

    space = spaces.get("nb201")
    with pytest.raises(spaces.InvalidOption, match="the input size must be"):
        space.input_shape(size)
    with pytest.raises(spaces.InvalidOption):
        space.build(space.sample(0), 10, size)


@pytest.mark.parametrize("classes", [0, -1, 10**9])
def test_bad_class_counts_are_one_sentence(classes):
    import spaces

    space = spaces.get("nao")
    with pytest.raises(spaces.InvalidOption, match="the number of classes must be at (least 1|most 100,000)"):
        space.build(space.sample(0), classes)
    assert space.input_shape(None) == (3, 32, 32) and space.num_classes(None) == 10


@pytest.mark.parametrize("key", ["nb201", "nb201(C=8,N=1,in_channels=3)", "fbnet", "fbnet:imagenet",
                                 "fbnetv2:tiny", "fbnetv2:mobile", "fbnetv2:tiny:w0.5:c1",
                                 "nao", "nao:B3:C8:N1", "nao:B5:C16:N1:in1"])
def test_a_space_key_written_anywhere_finds_the_same_space_again(key):
    import spaces

    space = spaces.get(key)
    assert space.key == key
    arch = space.sample(0)
    assert arch.space == key  # an arch carries its space's key, not only the family name
    assert spaces.get(arch.space).validate(arch) == arch


def test_an_arch_of_one_preset_is_refused_by_another():
    import spaces

    tiny, mobile = spaces.get("fbnetv2:tiny"), spaces.get("fbnetv2:mobile")
    with pytest.raises(InvalidArchitecture, match="fbnetv2:tiny"):
        mobile.validate(tiny.sample(0))
    with pytest.raises(spaces.UnknownName, match="preset"):
        spaces.get("fbnetv2:huge")
