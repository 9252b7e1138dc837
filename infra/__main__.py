"""The entry point the Pulumi engine runs (Pulumi.yaml: ``main: infra/``).

Pulumi runs this file as a script with ``infra/`` on sys.path; the program imports its siblings
(``components``, ``infra``) as packages from the repository root, so put the root first.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.program import main

main()
