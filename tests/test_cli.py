import pytest

from lowrank import experiments
from lowrank.cli import format_history, main


def test_list_names_every_experiment(quick_cache, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in experiments.EXPERIMENTS)
    assert "not trained" in out


def test_unknown_name_is_an_error_naming_the_allowed_values(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["show", "model7"])
    assert exit_.value.code == 2
    assert "name must be one of model0, model6, model10" in capsys.readouterr().err


def test_show_refuses_to_train_silently(quick_cache, capsys):
    assert main(["show", "model0"]) == 1
    assert "python -m lowrank train model0" in capsys.readouterr().err


def test_train_then_show(quick_cache, capsys, monkeypatch):
    monkeypatch.setattr(experiments, "QUICK_SUBSET", 300)
    assert main(["train", "model0"]) == 0
    assert main(["show", "model0"]) == 0
    out = capsys.readouterr().out
    assert "effective rank" in out and "erank" in out and "baseline" in out


def test_history_table_has_one_row_per_epoch():
    record = dict(epoch=1, lr=1e-3, train_loss=0.5, test_loss=0.4, test_acc=0.9, erank=700.0, srank=20.0, seconds=12.0)
    table = format_history([record, {**record, "epoch": 2}]).splitlines()
    assert len(table) == 3 and "90.00%" in table[1]
