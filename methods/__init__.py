"""UDA methods, one module each, registered in ``udabench.registry.METHODS``."""
from . import (adaptsegnet, advent, bdl, clan, cosine_similarity, dada, depth_distribution, dise, glss,  # noqa: F401
               glss_gan, oracle, source_only, unsup_backprop)
