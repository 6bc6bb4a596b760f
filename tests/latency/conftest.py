"""Fixtures shared by the transfer and designed-shot tests."""

import pytest

from tests.latency.test_predictors import GridSpace


@pytest.fixture(scope="module")
def grid():
    """6 decisions of 4 options (4,096 archs): small enough to know every latency."""
    return GridSpace(6, 4, name="grid64")
