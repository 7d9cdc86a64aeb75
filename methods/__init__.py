"""UDA methods, one module each, registered in ``udabench.registry.METHODS``."""
from . import glss, oracle, source_only  # noqa: F401
