"""Stand-in for ``streamdiffusion.acceleration``."""
