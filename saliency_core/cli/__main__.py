"""``python -m saliency_core.cli``: the ``saliency`` command (used by torchrun)."""
import sys

from saliency_core.cli import main

sys.exit(main())
