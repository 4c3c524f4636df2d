"""cwrnn_ext: the Clockwork RNN (Koutnik et al., ICML 2014) with kernels that compute only the
modules active at each step.
"""
from . import reference
from .functional import clockwork_rnn
from .layout import exponential_periods, split_evenly
from .modules import ClockworkRNN, ClockworkRNNCell
from .ops import cpu_capability, cuda_kernels_available, empty_cache, memory_stats
from .streaming import Stream

__all__ = ["ClockworkRNN", "ClockworkRNNCell", "Stream", "clockwork_rnn", "reference",
           "cpu_capability", "cuda_kernels_available", "empty_cache", "exponential_periods",
           "memory_stats", "split_evenly"]
__version__ = "0.1.0"
