"""Stand-in for ``streamdiffusion.preprocessing`` (only the processor registry is modelled)."""
