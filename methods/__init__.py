"""UDA methods, one module each, registered in ``udabench.registry.METHODS``."""
from . import adaptsegnet, advent, bdl, clan, dada, glss, oracle, source_only  # noqa: F401
