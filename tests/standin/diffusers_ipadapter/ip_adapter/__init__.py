"""Stand-in for ``diffusers_ipadapter.ip_adapter``."""
