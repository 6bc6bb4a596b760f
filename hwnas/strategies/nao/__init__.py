"""NAO (Neural Architecture Optimization) as the ``nao`` strategy: encoder, heads, decoder,
gradient step in embedding space on predicted accuracy minus the latency loss."""

from hwnas.strategies.nao.errors import BadOption, EmptyPopulation, UnsupportedSpace
from hwnas.strategies.nao.model import NAOModel
from hwnas.strategies.nao.optimise import BudgetOutOfRange, make_score, make_overshoot, propose
from hwnas.strategies.nao.strategy import NAOStrategy

__all__ = ["BadOption", "BudgetOutOfRange", "EmptyPopulation", "NAOModel", "NAOStrategy",
           "UnsupportedSpace", "make_score", "make_overshoot", "propose"]
