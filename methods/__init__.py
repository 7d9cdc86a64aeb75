"""UDA methods, one module each, registered in ``udabench.registry.METHODS``."""
from . import adaptsegnet, advent, bdl, clan, dada, dise, glss, oracle, source_only  # noqa: F401
