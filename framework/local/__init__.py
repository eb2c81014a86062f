"""The local runtime: the whole stack on moto, on a virtual clock by default."""

from framework.local.eventsource import LocalContext
from framework.local.runtime import LocalRuntime, SimulatedCrash

__all__ = ["LocalContext", "LocalRuntime", "SimulatedCrash"]
