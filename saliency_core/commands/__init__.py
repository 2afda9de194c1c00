"""Sub-commands of the ``saliency`` CLI (one module each, with ``register(subparsers)``)."""
