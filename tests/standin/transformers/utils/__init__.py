"""Stand-in ``transformers.utils``: only ``versions``."""
