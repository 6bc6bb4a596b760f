"""FBNetV2 / DMaskingNAS channel-masking supernet search (strategy ``supernet``).

``masked_layers`` (masked conv/BN, nested kernels, masked inverted residual),
``supernet`` (the shared base, the multi-path supernet and the architecture
parameters), ``singlepath`` (one masked block per block decision), ``kinds``
(either by name), ``search`` (warm-up, alternating weight / alpha updates,
temperature schedule), ``strategy`` (the Strategy: budgets, predictor,
evaluation of the chosen networks).
"""

from hwnas.strategies.supernet.kinds import SUPERNETS, make_supernet
from hwnas.strategies.supernet.search import BudgetOutcome, SearchConfig, SupernetSearch
from hwnas.strategies.supernet.singlepath import SinglePathSupernet
from hwnas.strategies.supernet.strategy import (SupernetStrategy, fit_latency_predictor,
                                                predicted_range, sweep_budgets)
from hwnas.strategies.supernet.supernet import (ArchParams, FBNetV2Supernet, MultiPathSupernet,
                                                SupernetBase, one_hot_weights)

__all__ = ["SUPERNETS", "ArchParams", "BudgetOutcome", "FBNetV2Supernet", "MultiPathSupernet",
           "SearchConfig", "SinglePathSupernet", "SupernetBase", "SupernetSearch",
           "SupernetStrategy", "fit_latency_predictor", "make_supernet", "one_hot_weights",
           "predicted_range", "sweep_budgets"]
