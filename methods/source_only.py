"""Source Only (seed 002 Table 2, first row): the segmentation network trained on the source alone."""
from __future__ import annotations

from udabench.registry import METHODS

from .base import FitContext, UDAMethod, source_network


@METHODS.register_module(name='source_only')
class SourceOnly(UDAMethod):
    tasks = ('skin', 'urban')
    uses_target_images = False

    def fit(self, ctx: FitContext) -> None:
        self.net = source_network(ctx)
