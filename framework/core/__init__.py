"""The bottom layer above ``framework.errors``: clocks, durations, serialization, journal records, logs,
fault points and step configuration. It imports nothing else from the framework."""
