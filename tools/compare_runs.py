#!/usr/bin/env python
"""Whether re-made result files reproduce earlier ones: every field but provenance and timings, and
the per-step loss logs (``<result>.log.csv``) byte for byte.

    python tools/compare_runs.py NEW --old OLD     # NEW/x.json against OLD/x.json
    python tools/compare_runs.py NEW --rev REV     # NEW/x.json against the same path at git revision REV

NEW and OLD are result folders; with --rev, NEW must lie inside this git checkout. Prints
one line per file that differs (and the fields that do), then a count; exit status 1 when any file
differs or has no counterpart, else 0. Ignored: what says when, where and by which code a run was
made (``PROVENANCE``) and the wall-clock timings inside method blocks (``TIMINGS``).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

PROVENANCE = ('finished', 'wall_time_s', 'git_commit', 'code_version', 'run_key', 'stage_keys', 'packages', 'machine')
#: (block, field) timings a result records besides ``wall_time_s``.
TIMINGS = (('latent_search', 'seconds_per_image'), ('clustering', 'seconds_per_image'))


def comparable(record: dict) -> dict:
    """``record`` without its provenance and timings."""
    out = {k: v for k, v in record.items() if k not in PROVENANCE}
    for block, field in TIMINGS:
        if isinstance(out.get(block), dict):
            out[block] = {k: v for k, v in out[block].items() if k != field}
    return out


def differences(new: dict, old: dict) -> list[str]:
    """The top-level fields whose comparable values differ."""
    a, b = comparable(new), comparable(old)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def read_old(path: Path, new_root: Path, old_root: Path | None, rev: str | None) -> bytes | None:
    """The earlier version of the file at ``path`` (under ``new_root``): the same relative path under
    ``old_root``, or the same path at git revision ``rev``; None if there is none."""
    if rev is None:
        counterpart = old_root / path.relative_to(new_root)
        return counterpart.read_bytes() if counterpart.exists() else None
    top = Path(subprocess.run(['git', 'rev-parse', '--show-toplevel'], capture_output=True, text=True,
                              check=True, cwd=path.parent).stdout.strip())
    shown = subprocess.run(['git', 'show', f'{rev}:{path.resolve().relative_to(top).as_posix()}'],
                           capture_output=True, cwd=top)
    return shown.stdout if shown.returncode == 0 else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('new', type=Path, help='folder of re-made result files')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--old', type=Path, help='folder of the earlier result files')
    source.add_argument('--rev', help='a git revision holding the earlier files at the same paths')
    args = parser.parse_args(argv)
    for folder in (args.new, args.old):
        if folder is not None and not folder.is_dir():
            parser.error(f'{folder} is not a folder of result files')
    files = sorted(args.new.rglob('*.json'))
    same = 0
    for path in files:
        old_json = read_old(path, args.new, args.old, args.rev)
        if old_json is None:
            print(f'{path}: no earlier file')
            continue
        fields = differences(json.loads(path.read_text()), json.loads(old_json))
        log = path.with_suffix('.log.csv')
        if log.exists() and read_old(log, args.new, args.old, args.rev) != log.read_bytes():
            fields.append('log.csv')
        if fields:
            print(f'{path}: differs in {", ".join(fields)}')
        else:
            same += 1
    print(f'{same} of {len(files)} result files reproduce the earlier ones (all but provenance and timings; loss logs byte for byte)')
    return 0 if same == len(files) else 1


if __name__ == '__main__':
    sys.exit(main())
