"""UDA methods, one module each, registered in ``udabench.registry.METHODS``."""
from . import (adaptsegnet, advent, bdl, clan, cosine_similarity, dada, dise, glss, glss_gan, oracle,  # noqa: F401
               source_only, unsup_backprop)
