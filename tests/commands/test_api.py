"""dilnas.api in-process, as a notebook uses it: the commands as functions, called twice in a row, raising
UserError on bad input, leaving the root logger and Hydra's global state alone."""

from __future__ import annotations

import logging

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from dilnas import api
from dilnas.errors import UserError
from dilnas.models.official import to_official_state_dict
from dilnas.models.regseg import RegSeg
from dilnas.spec.arch import ArchSpec, load_arch
from tests.helpers import TINY
from tests.helpers.commands import SEARCH_RUN, TINY_RUN

QUICK_SEARCH = [*SEARCH_RUN, "trainer.epochs=2", "trainer.eval_every_epochs=2"]


def assert_no_global_state() -> None:
    assert not GlobalHydra.instance().is_initialized()
    assert HydraConfig.instance().cfg is None


@pytest.mark.slow
def test_api_search_twice_derive_retrain_and_load(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # where api.retrain(arch=ArchSpec) keeps it
    root_handlers = list(logging.getLogger().handlers)
    first = api.search(*QUICK_SEARCH, run_dir=tmp_path / "a")
    second = api.search(*QUICK_SEARCH, run_dir=tmp_path / "b")
    assert_no_global_state()
    assert logging.getLogger().handlers == root_handlers
    assert first.arch_path == tmp_path / "a" / "arch.json" and isinstance(first.arch, ArchSpec)
    assert first.arch.to_dict()["blocks"] == second.arch.to_dict()["blocks"]  # same seed, same pick
    assert 0.0 <= first.miou <= 100.0 and first.miou == second.miou
    assert (tmp_path / "a" / "search.log").read_text().count("epoch") >= 2  # progress in the run's log
    assert "derived dilations" in capsys.readouterr().out

    expected = api.derive(first.run_dir, rule="expected")
    assert expected.search is not None and expected.search["rule"] == "expected"
    assert sorted(p.name for p in first.run_dir.glob("arch*.json")) == ["arch.json"]  # derive writes nothing

    inherited = api.load_model(first.arch_path, first.run_dir / "checkpoints" / "last.pt")
    assert not inherited.training

    for attempt in range(2):
        trained = api.retrain(
            f"arch={first.arch_path}", "trainer.max_steps=2", *TINY_RUN[1:], run_dir=tmp_path / f"r{attempt}"
        )
        assert trained.checkpoint == tmp_path / f"r{attempt}" / "checkpoints" / "best.pt"
        assert trained.checkpoint.is_file() and 0.0 <= trained.miou <= 100.0
    # An ArchSpec (api.derive's) retrains as its file does.
    from_spec = api.retrain("trainer.max_steps=2", *TINY_RUN[1:], run_dir=tmp_path / "spec", arch=expected)
    assert api.load_model(None, from_spec.checkpoint).spec.to_dict()["blocks"] == expected.to_dict()["blocks"]
    recorded = api.load_model(None, trained.checkpoint)  # the checkpoint records its architecture
    assert recorded.spec.to_dict() == api.load_model(first.arch_path, trained.checkpoint).spec.to_dict()
    assert_no_global_state()
    evaluated = api.retrain(
        f"arch={first.arch_path}",
        *TINY_RUN[1:],
        "eval_only=true",
        f"checkpoint={trained.checkpoint}",
        run_dir=tmp_path / "eval",
    )
    assert evaluated.checkpoint == trained.checkpoint and evaluated.miou == pytest.approx(trained.miou)


def test_api_bad_input_raises_and_leaves_nothing(tmp_path):
    with pytest.raises(UserError, match="unknown search space 'nowhere'"):
        api.search(*QUICK_SEARCH, "search.space=nowhere", run_dir=tmp_path / "run")
    with pytest.raises(UserError, match=r"trainer\.batch_size"):
        api.search("trainer.batch_size=many", run_dir=tmp_path / "run")
    with pytest.raises(UserError, match="missing required value 'arch'"):
        api.retrain(run_dir=tmp_path / "run")
    with pytest.raises(UserError, match="not a dilnas-search run directory"):
        api.derive(tmp_path)
    with pytest.raises(UserError, match="unknown architecture 'exp99'"):
        api.load_model("exp99")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(UserError, match="a-file/run: a file is in the way"):
        api.search(run_dir=tmp_path / "a-file" / "run")
    assert_no_global_state()


def test_api_load_model_by_name_path_or_spec_with_the_checkpoints_class_count(tmp_path):
    assert api.load_model("exp48_decoder26").spec.num_classes == 19
    spec = load_arch(TINY)
    trained = RegSeg(spec.with_num_classes(5))  # retraining adapted the classifier to a 5-class data set
    torch.save({"model": trained.state_dict()}, tmp_path / "dilnas.pt")
    torch.save(to_official_state_dict(trained), tmp_path / "released.pt")
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        reference = trained.eval()(image)
        for arch in (TINY, spec):
            for name in ("dilnas.pt", "released.pt"):
                model = api.load_model(arch, tmp_path / name)
                assert not model.training and model.spec.num_classes == 5
                assert torch.equal(model(image), reference)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: api.search(run_dir=["runs", "x"]),
            "run_dir=['runs', 'x']: expected a path (str or os.PathLike) or None",
        ),
        (
            lambda: api.retrain("arch=x.json", run_dir=3),
            "run_dir=3: expected a path (str or os.PathLike) or None",
        ),
        (lambda: api.derive(None), "run_dir=None: expected a path (str or os.PathLike)"),
        (lambda: api.derive("runs/x", topk="2"), "topk='2': expected a whole number of rates >= 1"),
        (lambda: api.derive("runs/x", checkpoint=1.5), "checkpoint=1.5: expected a path"),
        (lambda: api.load_model(7), "arch=7: expected a path (str or os.PathLike) or None"),
        (lambda: api.load_model("exp48_decoder26", checkpoint=[1]), "checkpoint=[1]: expected a path"),
    ],
)
def test_api_arguments_of_the_wrong_type_are_named(tmp_path, monkeypatch, call, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as caught:
        call()
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []
