"""FBNetV2 / DMaskingNAS channel-masking supernet search (strategy ``supernet``).

``masked_layers`` (masked conv/BN, masked inverted residual), ``supernet`` (the
weight-shared net and its architecture parameters), ``search`` (warm-up,
alternating weight / alpha updates, temperature schedule), ``strategy`` (the
Strategy: budgets, predictor, evaluation of the chosen networks).
"""

from hwnas.strategies.supernet.search import BudgetOutcome, SearchConfig, SupernetSearch
from hwnas.strategies.supernet.strategy import (SupernetStrategy, fit_latency_predictor,
                                                predicted_range, sweep_budgets)
from hwnas.strategies.supernet.supernet import ArchParams, FBNetV2Supernet, one_hot_weights

__all__ = ["ArchParams", "BudgetOutcome", "FBNetV2Supernet", "SearchConfig", "SupernetSearch",
           "SupernetStrategy", "fit_latency_predictor", "one_hot_weights", "predicted_range",
           "sweep_budgets"]
