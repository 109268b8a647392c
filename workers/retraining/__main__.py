"""``python -m workers.retraining DIR``: the training step's child process (see `workers.retraining.training`)."""

import sys
from pathlib import Path

from workers.retraining.training import main

main(Path(sys.argv[1]))
