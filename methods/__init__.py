"""UDA methods, one module each, registered in ``udabench.registry.METHODS``."""
from . import adaptsegnet, advent, bdl, clan, dada, dise, glss, glss_gan, oracle, source_only, unsup_backprop  # noqa: F401
