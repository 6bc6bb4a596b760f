"""Learned samplers of architectures: the LSTM controller of NAS-RL / MONAS / ENAS and the
REINFORCE trainer with the memory-buffer fix. Controllers know a space, never a device."""

from hwnas.controllers.lstm import LSTMController, Rollout
from hwnas.controllers.reinforce import Reconstructor, Reinforce

__all__ = ["LSTMController", "Reconstructor", "Reinforce", "Rollout"]
