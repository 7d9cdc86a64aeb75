import importlib.util
import json
import sys
from pathlib import Path

import pytest

# The command-line tools are scripts, not package modules: load them as tools_<name> for the tests.
TOOLS = Path(__file__).resolve().parent.parent / 'tools'


def pytest_configure(config):
    for name in ('compare_runs', 'make_tables', 'run_benchmark', 'sweep'):
        spec = importlib.util.spec_from_file_location(f'tools_{name}', TOOLS / f'{name}.py')
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[f'tools_{name}'] = module


@pytest.fixture
def smoke_run(tmp_path):
    """Run one method end to end at the ``smoke`` profile on synthetic data; return (record, result path)."""
    from udabench.runner import RunSpec, run

    def go(method, target='hand', net='deeplabv3plus', root=None, **kwargs):
        root = root or tmp_path
        spec = RunSpec(method=method, target=target, net=net, profile='smoke', data_root=str(root / 'no-real-data'),
                       results_dir=str(root / 'runs'), work_dir=str(root / 'work'),
                       synthetic_cache=str(root / 'synth'), progress=False, **kwargs)
        path = run(spec)
        return json.loads(path.read_text()), path
    return go
