"""The entry point the Pulumi engine runs (bootstrap/Pulumi.yaml: ``main: __main__.py``).

Pulumi runs this file as a script from ``bootstrap/``; the program imports ``bootstrap`` and
``components`` as packages from the repository root, so put the root first.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bootstrap.program import main

main()
