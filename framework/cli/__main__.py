"""``python -m framework.cli``: the ``workflows`` command."""

import sys

from framework.cli import main

sys.exit(main())
