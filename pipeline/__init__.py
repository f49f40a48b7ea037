"""curate: the spine (config, schema, stage protocol, Ray runner, CLI)."""
__version__ = "0.1.0"
