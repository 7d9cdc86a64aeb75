import sys
from pathlib import Path

# The command-line tools are scripts, not package modules: expose them to the tests.
TOOLS = Path(__file__).resolve().parent.parent / 'tools'
sys.path.insert(0, str(TOOLS))


def pytest_configure(config):
    import importlib.util
    spec = importlib.util.spec_from_file_location('tools_make_tables', TOOLS / 'make_tables.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules['tools_make_tables'] = module
