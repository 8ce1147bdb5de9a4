"""``python -m mmgnn ARGS`` is ``mmgnn ARGS``; what ``torchrun -m mmgnn train ...`` runs on
every rank."""

import sys

from mmgnn.cli import main

sys.exit(main())
