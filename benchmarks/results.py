"""Result files: one JSON per run, written atomically, with the provenance a reader needs."""
from __future__ import annotations

import csv
import json
import math
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

PACKAGES = ('torch', 'mmcv', 'mmengine', 'mmsegmentation', 'numpy', 'pytorch-msssim')


def git_commit() -> str:
    """HEAD's commit of the repository holding this file, '+dirty' when the tree has changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'
    return commit + ('+dirty' if dirty else '')


def package_versions() -> dict:
    out = {'python': platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine() -> dict:
    """The CPU a run's numbers were computed on. The same code, seed and thread count repeat bit for
    bit on one kind of CPU, but the kernels PyTorch picks differ by instruction set (AVX2, AVX512) and,
    on one instruction set, by vendor (Intel Xeon against AMD EPYC, both AVX512: other numbers), so
    another CPU gives other rounding and, after many training steps, other numbers; ``tables.cpu_kind``
    names the kind by the model and the instruction set."""
    import torch
    model = next((line.split(':', 1)[1].strip() for line in _cpuinfo() if line.startswith('model name')), None)
    return {'cpu': model or platform.processor() or None, 'cpu_capability': torch.backends.cpu.get_cpu_capability(),
            'cores': os.cpu_count(), 'machine': platform.machine()}


def _cpuinfo() -> list[str]:
    try:
        return Path('/proc/cpuinfo').read_text().splitlines()
    except OSError:
        return []


def atomic_write(path: Path, write, mode: str = 'wb', **open_kwargs) -> None:
    """Write ``path`` atomically: ``write(file)`` fills a temporary file of a name unique to this
    writer in the same folder, which then replaces ``path``. Concurrent writers of one path (two runs
    rendering the same synthetic cache) never share a temporary file; the last replace wins."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + '.', suffix='.tmp')
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)          # as a plain open() would create it (mkstemp makes it 0600)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: dict) -> None:
    text = json.dumps(payload, indent=2, sort_keys=True, default=str) + '\n'
    atomic_write(path, lambda fh: fh.write(text), mode='w')


def load_results(root: Path) -> list[dict]:
    """Every result file under ``root``; a malformed file raises an error naming it."""
    out = []
    for path in sorted(Path(root).rglob('*.json')):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f'result file {path} is not valid JSON: {err}') from err
        missing = {'method', 'target', 'net', 'profile', 'seed', 'metrics', 'data_source'} - set(record)
        if missing:
            raise ValueError(f'result file {path} lacks the fields {sorted(missing)}')
        record['_path'] = str(path)
        out.append(record)
    return out


def training_log_path(result: Path) -> Path:
    """The per-step training log written beside a result file (``<result>.log.csv``)."""
    result = Path(result)
    return result.with_name(result.stem + '.log.csv')


def write_training_log(path: Path, history: dict) -> None:
    """One CSV row per (stage, iteration) with every logged value; atomically."""
    keys = sorted({k for logs in history.values() for log in logs for k in log})

    def write(fh):
        writer = csv.DictWriter(fh, ['stage', 'iteration', *keys])
        writer.writeheader()
        for stage, logs in history.items():
            for it, log in enumerate(logs):
                writer.writerow({'stage': stage, 'iteration': it, **log})
    atomic_write(path, write, mode='w', newline='')


def summarise_training_log(history: dict, window: float = 0.1) -> dict:
    """Per stage: iterations, and each value's mean over the first and the last ``window`` of steps."""
    out = {}
    for stage, logs in history.items():
        if not logs:
            continue
        n = max(1, int(round(window * len(logs))))
        summary = {'iterations': len(logs)}
        for key in sorted({k for log in logs for k in log}):
            values = [log[key] for log in logs if key in log]
            head, tail = values[:n], values[-n:]
            summary[key] = {'first': math.fsum(head) / len(head), 'last': math.fsum(tail) / len(tail)}
        out[stage] = summary
    return out


def describe_result(path: Path) -> str:
    """A stored result in a few lines: its metrics (IoU/Dice, or mIoU-16/13, per split), seed, commit, data source."""
    record = json.loads(Path(path).read_text())
    lines = [f'{path}: {record["method"]} on {record["target"]}, {record["net"]}, profile {record["profile"]}, '
             f'seed {record["seed"]}' + (f', tag {record["tag"]}' if record.get('tag') else '')]
    for split, m in record['metrics'].items():
        if 'iou' in m:
            lines.append(f'  {split}: IoU {m["iou"]:.4f}  Dice {m["dice"]:.4f}')
        elif 'miou16' in m:
            lines.append(f'  {split}: mIoU-16 {m["miou16"]:.4f}  mIoU-13 {m["miou13"]:.4f}')
    version = record.get('code_version') or record.get('git_commit', 'unknown')
    lines.append(f'  code {version}, data: {record["data_source"]}, finished {record.get("finished", "?")}')
    return '\n'.join(lines)
