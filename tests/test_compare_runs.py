"""tools/compare_runs.py: what a re-made result must reproduce, and what it may not."""
import json

import pytest

from tools_compare_runs import main


def _write(folder, record, log='stage,iteration,loss\nsegmentation,0,0.5\n'):
    path = folder / 'cpu' / 'synthetic' / 'advent' / 'hand_deeplabv3plus_seed0.json'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    path.with_suffix('.log.csv').write_text(log)
    return path


RECORD = dict(method='advent', seed=0, metrics={'target_all': {'iou': 0.5}}, code_version='a', git_commit='x',
              wall_time_s={'total': 10.0}, finished='2026-12-05', latent_search={'iterations': 100, 'seconds_per_image': 1.0})


def test_only_provenance_and_timings_may_differ(tmp_path, capsys):
    _write(tmp_path / 'old', RECORD)
    _write(tmp_path / 'new', dict(RECORD, code_version='b', git_commit='y', wall_time_s={'total': 12.0}, finished='later',
                                  latent_search={'iterations': 100, 'seconds_per_image': 2.0}))
    assert main([str(tmp_path / 'new'), '--old', str(tmp_path / 'old')]) == 0
    assert '1 of 1 result files reproduce' in capsys.readouterr().out


def test_a_changed_metric_a_changed_loss_log_or_a_missing_file_is_named(tmp_path, capsys):
    _write(tmp_path / 'old', RECORD)
    _write(tmp_path / 'new', dict(RECORD, metrics={'target_all': {'iou': 0.50001}},
                                  latent_search={'iterations': 99, 'seconds_per_image': 1.0}),
           log='stage,iteration,loss\nsegmentation,0,0.50001\n')
    assert main([str(tmp_path / 'new'), '--old', str(tmp_path / 'old')]) == 1
    assert 'differs in latent_search, metrics, log.csv' in capsys.readouterr().out
    (tmp_path / 'empty').mkdir()
    assert main([str(tmp_path / 'new'), '--old', str(tmp_path / 'empty')]) == 1
    assert 'no earlier file' in capsys.readouterr().out


def test_a_missing_folder_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path / 'nowhere'), '--old', str(tmp_path)])
    assert 'nowhere is not a folder of result files' in capsys.readouterr().err
