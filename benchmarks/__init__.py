"""udabench: the harness (registries, evaluator, runner, table specs) of the NIR skin UDA suite.

Installed as the package ``udabench``; the repository folders ``methods/`` and ``datasets/`` are
installed as ``udabench.methods`` and ``udabench.datasets`` (see pyproject.toml and the README).
"""
