"""dilnas-search, dilnas-export and dilnas-plot end to end: run directory, dilation history, resume after
SIGKILL, second order, DDP, and the derived architecture used by dilnas-info and dilnas-retrain."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dilnas.spec.arch import load_arch
from dilnas.utils.checkpoints import load_checkpoint
from tests.helpers import DDP_WORKER, ENV, REPO
from tests.helpers.commands import SEARCH_RUN, records, tensorboard_images, wait_for_step


def command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def search(run_dir: Path, *overrides: str, background: bool = False):
    args = command("dilnas.search", *SEARCH_RUN, f"hydra.run.dir={run_dir}", *overrides)
    if background:
        return subprocess.Popen(
            args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
        )
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600, env=ENV)


def without_provenance(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("provenance")
    return data


@pytest.mark.slow
def test_search_run_directory_history_export_plot_and_retrain(tmp_path):
    run_dir = tmp_path / "search"
    result = search(run_dir, "trainer.epochs=4", "trainer.eval_every_epochs=2")
    assert result.returncode == 0, result.stderr
    assert "derived dilations" in result.stdout
    # Captured output is not a terminal: no progress bars, but the log says when the selection starts.
    assert "\r" not in result.stderr + result.stdout
    assert "selection: scoring 8 candidates on the held-out split" in result.stderr + result.stdout
    # One spelling of a pick: the rates key, then each branch by name.
    assert re.search(r"derived dilations (\d)-(\d) \(block4\.b1=\1 block5\.b1=\2\)", result.stdout), (
        result.stdout
    )
    names = {p.name for p in run_dir.iterdir()}
    assert {"arch.json", "arch_history.jsonl", "metrics.jsonl", "tb", "checkpoints", "space.yaml"} <= names

    history = [json.loads(line) for line in (run_dir / "arch_history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    first, last = history[0]["branches"], history[-1]["branches"]
    assert list(first) == ["block4.b1", "block5.b1"]
    assert all(len(set(b["probs"])) == 1 for b in first.values())  # warm-up epoch: logits untouched
    assert any(len(set(b["probs"])) > 1 for b in last.values())  # then they move
    evals = records(run_dir, "eval")
    assert [r["step"] for r in evals] == [8, 16]
    assert all({"search/miou", "search/miou_supernet", "search/gap"} <= set(r) for r in evals)
    assert not any(key.startswith("val/") for r in evals for key in r)  # val/: the evaluation split only
    tags = {key for r in records(run_dir, "arch_epoch") for key in r}
    assert {"arch/prob/block5.b1/d6", "arch/rate/block5.b1", "arch/expected/block4.b1", "arch/fov"} <= tags

    arch = load_arch(run_dir / "arch.json")
    assert arch.search["space"] == "synthetic_tiny" and arch.provenance["seed"] == 0
    rates = [arch.search["branches"][key]["choice"] for key in last]
    # The rule's pick (the history's last choice) and the next most probable gapless architectures, 8 in all,
    # scored on the held-out split; the best score is kept and reported.
    selection = arch.search["selection"]
    assert len(selection) == 8 and len({tuple(c["rates"]) for c in selection}) == 8
    assert selection[0]["rates"] == [b["choice"] for b in last.values()]
    best = max(selection, key=lambda c: c["miou"])
    assert rates == best["rates"] and f"held-out mIoU derived {best['miou']:.2f}" in result.stdout

    def export(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            command("dilnas.export", f"run_dir={run_dir}", *args),
            cwd=REPO,
            capture_output=True,
            text=True,
            env=ENV,
        )

    searched = (run_dir / "arch.json").read_bytes()
    # The run's own rule at last.pt: the selection recorded with the checkpoint applies, as in arch.json.
    assert export(f"out={tmp_path / 'own.json'}").returncode == 0
    own = load_arch(tmp_path / "own.json")
    assert own.blocks == arch.blocks and own.search["selection"] == arch.search["selection"]
    assert export("rule=expected", f"out={tmp_path / 'expected.json'}").returncode == 0
    assert load_arch(tmp_path / "expected.json").search["rule"] == "expected"
    # Without out=, every rule writes beside the search's arch.json, never over it.
    for args, name in [
        (["rule=topk", "topk=2"], "arch_topk2.json"),
        (["checkpoint=" + str(run_dir / "checkpoints" / "best.pt")], "arch_argmax_best.json"),
    ]:
        result = export(*args)
        assert result.returncode == 0, result.stderr
        assert load_arch(run_dir / name).search["rule"] == ("topk2" if "topk=2" in args else "argmax")
    refused = export(f"out={run_dir / 'arch.json'}")
    assert refused.returncode == 2 and "that is the search's own arch.json" in refused.stderr
    assert (run_dir / "arch.json").read_bytes() == searched

    info = subprocess.run(
        command("dilnas.info", f"arch={run_dir / 'arch.json'}", "format=json"),
        cwd=REPO,
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert info.returncode == 0 and json.loads(info.stdout)["field_of_view"] == arch.field_of_view

    plot = subprocess.run(
        command("dilnas.plot", f"run_dir={run_dir}"), cwd=REPO, capture_output=True, text=True, env=ENV
    )
    assert plot.returncode == 0, plot.stderr
    assert (run_dir / "arch_evolution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    retrain = subprocess.run(
        command(
            "dilnas.retrain",
            f"arch={run_dir / 'arch.json'}",
            f"init={run_dir / 'checkpoints' / 'last.pt'}",
            "data.image_size=64",
            "data.context_distance=8",
            "data.train_samples=16",
            "data.val_samples=4",
            "trainer.batch_size=8",
            "trainer.max_steps=2",
            "device=cpu",
            f"hydra.run.dir={tmp_path / 'retrain'}",
        ),
        cwd=REPO,
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert retrain.returncode == 0, retrain.stderr
    assert "initialised from" in retrain.stdout


RESUME_BUDGET = ["trainer.epochs=6", "trainer.eval_every_epochs=3", "trainer.checkpoint_every_steps=3"]


@pytest.fixture(scope="module")
def reference_search(tmp_path_factory) -> Path:
    """An uninterrupted search with ``RESUME_BUDGET``: what every interrupted and resumed one must end as."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    result = search(run_dir, *RESUME_BUDGET)
    assert result.returncode == 0, result.stderr
    return run_dir


def assert_same_search(run_dir: Path, reference: Path) -> None:
    expected = load_checkpoint(reference / "checkpoints" / "last.pt")["model"]
    actual = load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    assert without_provenance(run_dir / "arch.json") == without_provenance(reference / "arch.json")
    history = [
        json.loads(line)["epoch"] for line in (run_dir / "arch_history.jsonl").read_text().splitlines()
    ]
    assert history == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in records(run_dir, "train")] == list(range(1, 25))  # no step logged twice


@pytest.mark.slow
def test_sigkill_then_resume_ends_with_the_same_logits_and_arch(tmp_path, reference_search):
    run_dir = tmp_path / "killed"
    process = search(run_dir, *RESUME_BUDGET, background=True)
    wait_for_step(process, run_dir, 14)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    resumed = search(run_dir, *RESUME_BUDGET, "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_search(run_dir, reference_search)


def submitit_tasks(cwd: Path, count: int = 1) -> list[int]:
    """The pids of the ``count`` task processes of a submitit job started in ``cwd`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if b"submitit.core._submit" in argv and (entry / "cwd").resolve() == cwd.resolve():
                found.append(int(entry.name))
        except OSError:  # not a process, or it has just ended
            continue
    assert len(found) == count, f"{len(found)} submitit task processes in {cwd}, expected {count}"
    return found


def only_sweep_dir(cwd: Path, timeout: float = 120) -> Path:
    """The one timestamped sweep directory under ``cwd/runs/sweeps`` (waits for the sweep to create it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list((cwd / "runs" / "sweeps").glob("*"))
        if found:
            assert len(found) == 1, found
            return found[0]
        time.sleep(0.05)
    pytest.fail(f"no sweep directory under {cwd} after {timeout} s")


@pytest.mark.slow
def test_preempted_submitit_job_is_requeued_and_resumes_in_its_own_run_directory(tmp_path, reference_search):
    """The SLURM requeue path, run through submitit's local executor: SIGUSR2 (submitit's preemption signal)
    saves a checkpoint at the next step, submitit requeues the job, and the requeued job (resume=true, as
    +experiment=slurm sets it) finds its run directory under the default timestamped sweep directory and
    continues there to the same result as an uninterrupted run."""
    sweep = subprocess.Popen(
        command(
            "dilnas.search", "-m", "hydra/launcher=submitit_local", "resume=true", *SEARCH_RUN, *RESUME_BUDGET
        ),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    sweep_dir = only_sweep_dir(tmp_path)
    run_dir = sweep_dir / "0"
    wait_for_step(sweep, run_dir, 6)
    (task,) = submitit_tasks(tmp_path)
    os.kill(task, signal.SIGUSR2)
    _, stderr = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, stderr[-3000:]

    (job_log,) = sweep_dir.glob(".submitit/*/*_0_log.out")
    log_text = job_log.read_text()
    saved = re.search(r"SIGUSR2: saved \S+ at step (\d+)", log_text)
    assert saved and 6 <= int(saved[1]) < 24, log_text[-3000:]
    assert "Requeued job" in log_text
    assert f"resumed from {run_dir / 'checkpoints' / 'last.pt'} at step {saved[1]}/24" in log_text
    assert (
        only_sweep_dir(tmp_path) == sweep_dir
    )  # the requeued job did not start a sweep directory of its own
    assert_same_search(run_dir, reference_search)
    assert len(json.loads((sweep_dir / "summary.json").read_text())["runs"]) == 1


@pytest.mark.slow
def test_a_submitit_job_with_two_tasks_trains_ddp_and_resumes_after_preemption(tmp_path):
    """hydra.launcher.tasks_per_node=2: one DDP rank per task (gloo here). SIGUSR2 reaches both tasks, as
    SLURM signals every task of a job: both stop at the same step, rank 0 requeues, both resume."""
    sweep = subprocess.Popen(
        command(
            "dilnas.search",
            "-m",
            "hydra/launcher=submitit_local",
            "hydra.launcher.tasks_per_node=2",
            "resume=true",
            *SEARCH_RUN,
            *RESUME_BUDGET,
        ),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    sweep_dir = only_sweep_dir(tmp_path)
    run_dir = sweep_dir / "0"
    wait_for_step(sweep, run_dir, 3)  # 32 training images, 2 ranks x 8: 2 steps per epoch, 12 in all
    for task in submitit_tasks(tmp_path, count=2):
        os.kill(task, signal.SIGUSR2)
    _, stderr = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, stderr[-3000:]

    rank0, rank1 = (next(sweep_dir.glob(f".submitit/*/*_{rank}_log.out")).read_text() for rank in (0, 1))
    saved = re.search(r"SIGUSR2: saved \S+ at step (\d+)", rank0)
    assert saved and 3 <= int(saved[1]) < 12, rank0[-3000:]
    assert "Requeued job" in rank0
    for log_text in (rank0, rank1):
        assert f"resumed from {run_dir / 'checkpoints' / 'last.pt'} at step {saved[1]}/12" in log_text
    assert [r["step"] for r in records(run_dir, "train")] == list(range(1, 13))
    assert load_arch(run_dir / "arch.json").gaps() == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant", [["search.order=second"], ["search.relaxation=gumbel", "search.shared_kernel=false"]]
)
def test_second_order_and_gumbel_searches_move_the_logits(tmp_path, variant):
    run_dir = tmp_path / "run"
    result = search(run_dir, "trainer.epochs=2", *variant)
    assert result.returncode == 0, result.stderr
    alphas = [
        v
        for k, v in load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"].items()
        if k.startswith("alphas.")
    ]
    assert len(alphas) == 2 and any(alpha.abs().sum() > 0 for alpha in alphas)


@pytest.mark.slow
def test_ddp_search_keeps_the_logits_identical_on_every_rank(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29519",
            str(DDP_WORKER),
            str(tmp_path),
            "search",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    alphas = [key for key in rank0["model"] if key.startswith("alphas.")]
    assert alphas and any(rank0["model"][key].abs().sum() > 0 for key in alphas)
    for key in rank0["model"]:
        assert torch.equal(rank0["model"][key], rank1["model"][key]), key
    assert rank0["miou"] == rank1["miou"]


def test_search_user_errors(tmp_path):
    result = search(tmp_path / "run", "search.space=nowhere")
    assert result.returncode == 2
    assert (
        result.stderr.strip().splitlines() == [result.stderr.strip()]
        and "unknown search space 'nowhere'; available: camvid_lite, regseg_exp48, synthetic_deep, synthetic_tiny"
        in result.stderr
    )
    export = subprocess.run(
        command("dilnas.export", f"run_dir={tmp_path}"), cwd=REPO, capture_output=True, text=True
    )
    assert export.returncode == 2 and "not a dilnas-search run directory" in export.stderr

    # Settings the trainer refuses are found before the run directory is written: nothing is left behind.
    small = search(tmp_path / "small", "trainer.batch_size=16", "search.heldout_fraction=0.1")
    assert small.returncode == 2 and small.stderr.strip().splitlines()[-1] == (
        "dilnas-search: error: trainer.batch_size=16 is larger than the 6 held-out samples per process "
        "(search.heldout_fraction=0.1): lower it, raise search.heldout_fraction or add data"
    )
    assert not (tmp_path / "small").exists()


@pytest.mark.slow
def test_multirun_sweep_writes_the_report(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = subprocess.run(
        command(
            "dilnas.search", "-m", "seed=0,1", *SEARCH_RUN, "trainer.epochs=2", f"hydra.sweep.dir={sweep_dir}"
        ),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p.name for p in sweep_dir.iterdir()} >= {"0", "1", "summary.md", "summary.csv", "summary.json"}
    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert [run["run"] for run in summary["runs"]] == ["0", "1"]
    assert [run["overrides"][0] for run in summary["runs"]] == ["seed=0", "seed=1"]
    consensus = load_arch(sweep_dir / "consensus_arch.json")
    assert consensus.gaps() == [] and consensus.search["rule"] == "consensus"

    again = subprocess.run(
        command("dilnas.report", f"sweep_dir={sweep_dir}"), cwd=REPO, capture_output=True, text=True, env=ENV
    )
    assert again.returncode == 0, again.stderr
    assert "consensus_arch.json" in again.stdout


def test_random_search_baseline_picks_the_best_candidate_and_reports_like_a_search(tmp_path):
    from dilnas.analysis.sweep_summary import report_sweep

    run_dir = tmp_path / "sweep" / "0"
    result = search(run_dir, "search.method=random", "search.random_archs=3", "search.random_steps=2")
    assert result.returncode == 0, result.stderr
    arch = json.loads((run_dir / "arch.json").read_text())
    candidates = arch["search"]["candidates"]
    assert arch["search"]["rule"] == "random" and len(candidates) == 3
    assert len({tuple(c["rates"]) for c in candidates}) == 3  # distinct gapless draws
    best = max(candidates, key=lambda c: c["miou"])
    assert [arch["search"]["branches"][k]["choice"] for k in ("block4.b1", "block5.b1")] == best["rates"]
    (final,) = [r for r in records(run_dir, "eval") if r.get("final")]
    assert final["search/miou"] == best["miou"]
    assert final["cpu_seconds"] == pytest.approx(sum(c["cpu_seconds"] for c in candidates))
    assert all(records(path, "eval")[-1]["step"] == 2 for path in run_dir.glob("candidates/*"))
    summary = report_sweep(tmp_path / "sweep")  # the candidates' run directories are not taken for runs
    assert [run["run"] for run in summary["runs"]] == ["0"]
    assert summary["runs"][0]["miou"] == best["miou"]
    # The same draws for the same seed; resuming a finished random search trains nothing again.
    again = search(
        run_dir, "search.method=random", "search.random_archs=3", "search.random_steps=2", "resume=true"
    )
    assert again.returncode == 0, again.stderr
    resumed = json.loads((run_dir / "arch.json").read_text())["search"]["candidates"]
    assert [(c["rates"], c["miou"]) for c in resumed] == [(c["rates"], c["miou"]) for c in candidates]


@pytest.mark.parametrize("relaxation", ["softmax", "gumbel"])
def test_gap_probe_is_like_for_like_and_leaves_the_training_state_alone(tmp_path, relaxation):
    from torch.utils.data import Subset

    from dilnas.data.factory import build_dataset
    from dilnas.models.supernet import SuperNet
    from dilnas.spec.options import DataConfig, LossConfig, OptimConfig, SearchConfig, TrainerConfig
    from dilnas.spec.space import load_space
    from dilnas.train.run_dir import RunDir
    from dilnas.train.sampling import split_indices
    from dilnas.train.search_trainer import SearchData, SearchTrainer
    from dilnas.train.selection import recalibrate_batchnorm
    from dilnas.train.trainer import Recipe, TrainSetup, evaluate

    torch.manual_seed(0)
    data = DataConfig(image_size=64, context_distance=8, train_samples=32, val_samples=4, num_workers=0)
    train, plain = build_dataset(data, "train", True), build_dataset(data, "train", False)
    kept, heldout = split_indices(len(train), 0.5, seed=0)
    search_data = SearchData(
        Subset(train, kept), Subset(train, heldout), Subset(plain, heldout), list(train.class_names)
    )
    supernet = SuperNet(load_space("synthetic_tiny"), relaxation)
    recipe = Recipe(TrainerConfig(max_steps=3, batch_size=4), OptimConfig(warmup_steps=1), LossConfig())
    config = SearchConfig(warmup_epochs=0, relaxation=relaxation, gap_bn_batches=2)
    trainer = SearchTrainer(
        supernet, search_data, TrainSetup(RunDir(tmp_path), torch.device("cpu"), 0), recipe, config
    )
    trainer.fit()
    assert (tmp_path / "tb").is_dir()
    assert "val/overlays" not in tensorboard_images(tmp_path)  # it evaluates on held-out data, not val/
    before = {key: value.clone() for key, value in supernet.state_dict().items()}
    summary, scalars = trainer.measure()
    assert all(torch.equal(before[key], value) for key, value in supernet.state_dict().items())
    assert set(scalars) >= {"search/miou", "search/miou_supernet", "search/gap"} and not any(
        key.startswith("val/") for key in scalars
    )
    # The supernet is scored as its expectation with BatchNorm statistics re-estimated on the same images
    # as the derived network's: recompute it independently.
    expectation = SuperNet(supernet.space, "softmax")
    expectation.load_state_dict(supernet.state_dict())
    recalibrate_batchnorm(expectation, trainer.calibration_batches())
    matrix = evaluate(expectation, trainer.eval_loader, 3, torch.device("cpu"))
    assert summary["miou_supernet"] == pytest.approx(
        matrix.summary(list(train.class_names))["miou"], abs=1e-9
    )
    assert scalars["search/gap"] == pytest.approx(summary["miou_supernet"] - summary["miou"])
    # At the end (step 3 of 3) the derived network is the best of the shortlist, scored like the rule's pick.
    selection = summary["selection"]
    assert len(selection) == 8 and selection[0]["miou"] == scalars["search/miou_rule"]
    assert summary["miou"] == max(entry["miou"] for entry in selection)
    assert summary["rates"] == max(selection, key=lambda entry: entry["miou"])["rates"]
    trainer.search = dataclasses.replace(config, select_top=1)  # the rule's pick alone
    alone, scalars = trainer.measure()
    assert "selection" not in alone and "search/miou_rule" not in scalars
    assert alone["miou"] == selection[0]["miou"] and alone["rates"] == selection[0]["rates"]


@pytest.mark.parametrize("setting", ["search.random_archs=0", "search.random_steps=0"])
def test_random_search_refuses_an_empty_budget_before_writing(tmp_path, setting):
    result = search(tmp_path / "run", "search.method=random", setting)
    assert result.returncode == 2 and setting.split("=")[0] in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
