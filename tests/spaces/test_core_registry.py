"""The one registry helper: lazy entries, the register decorator, create, unknown names."""

import pytest

from spaces.core import Registry
from spaces.errors import UnknownName


class Thing:
    def __init__(self, size=1, colour="red"):
        self.size, self.colour = size, colour


def test_lazy_entries_resolve_on_first_use_and_create_drops_none():
    reg = Registry("thing", {"path": "collections:OrderedDict"})
    assert reg.names() == ["path"] and "path" in reg
    from collections import OrderedDict

    assert reg.get("path") is OrderedDict
    reg.register("thing", Thing)
    made = reg.create("thing", size=3, colour=None)  # None = not given: the default stays
    assert (made.size, made.colour) == (3, "red")


def test_register_decorator_names_the_class_and_unknown_names_list_the_known():
    reg = Registry("widget", aliases={"w": "wide"})

    @reg.register("wide")
    class Wide:
        pass

    assert Wide.name == "wide" and reg.get("w") is Wide and reg.in_order() == ["wide"]
    with pytest.raises(UnknownName, match="unknown widget 'narrow'; known: wide"):
        reg.get("narrow")
    reg.unregister("wide")
    assert "wide" not in reg


def test_resolvers_answer_names_not_registered_one_by_one():
    reg = Registry("strategy")
    reg.add_resolver(lambda name: Thing if name.startswith("lib:") else None)
    assert reg.get("lib:anything") is Thing
    with pytest.raises(UnknownName):
        reg.get("other")
