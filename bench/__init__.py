"""`make bench`: counted AWS calls and steps per second of Lambda Workflows on in-process moto.

Targets come from issue 2 and ``shared/reference/cost-model.md``. Each figure is printed with PASS or
FAIL; the exit status is non-zero only if the benchmark itself crashes.
"""

import os

# Set before anything imports framework.core.logs, whose Powertools Logger reads it when constructed.
os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
