"""``python -m mae_seg.runner [torchrun options] SCRIPT [script options]``: torchrun that
restarts a run only where a restart can help (:func:`mae_seg.runner.restarts.launch`); what
``tools/dist_train.sh`` runs.

A module of its own: ``python -m mae_seg.runner.restarts`` would run a second copy of a
module the package has already imported (Python warns so).
"""

import sys

from .restarts import launch

sys.exit(launch(sys.argv[1:]))
