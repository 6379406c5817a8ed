"""Pieces of the training loop: metrics, losses, schedule, sampling, checkpoints, initialisation."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import pytest
import torch

from dilnas.models.initialize import initialize_from
from dilnas.models.official import to_official_state_dict
from dilnas.models.regseg import RegSeg
from dilnas.spec.arch import load_arch
from dilnas.train.distributed import DistInfo
from dilnas.train.losses import BootstrappedCrossEntropy
from dilnas.train.metrics import ConfusionMatrix
from dilnas.train.sampling import ResumableDistributedSampler, SeededAugmentation
from dilnas.train.schedule import parameter_groups, warmup_poly_factor
from dilnas.train.signals import StopSignals
from dilnas.utils.checkpoints import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from dilnas.utils.errors import RunInterrupted, UserError
from tests.helpers import EXP48_PATH, TINY


def test_confusion_matrix_miou_ignores_255_and_absent_classes():
    matrix = ConfusionMatrix(3)
    target = torch.tensor([0, 0, 1, 1, 255, 255])
    prediction = torch.tensor([0, 1, 1, 1, 2, 0])
    matrix.update(prediction, target)
    iou = matrix.iou()
    assert iou[0].item() == pytest.approx(1 / 2)  # tp 1, union 2
    assert iou[1].item() == pytest.approx(2 / 3)  # tp 2, union 3
    assert math.isnan(iou[2].item())  # never seen: not in the mean
    assert matrix.miou() == pytest.approx(100 * (1 / 2 + 2 / 3) / 2)
    summary = matrix.summary(["a", "b", "c"])
    assert summary["iou"]["c"] is None and summary["pixel_accuracy"] == pytest.approx(75.0)

    assert "loss" not in summary  # nothing accumulated, nothing reported


def test_confusion_matrix_loss_is_the_mean_cross_entropy_of_labelled_pixels():
    matrix = ConfusionMatrix(2)
    # Two batches of one image, 1x2 pixels; the second pixel of the second batch is unlabelled.
    for logits, target in (
        (torch.tensor([[[[0.0, 2.0]], [[0.0, 0.0]]]]), torch.tensor([[[0, 1]]])),
        (torch.tensor([[[[1.0, 5.0]], [[0.0, -5.0]]]]), torch.tensor([[[1, 255]]])),
    ):
        matrix.add_loss(logits, target)
    by_hand = [math.log(2), math.log(1 + math.exp(2)), math.log(1 + math.exp(1))]
    assert matrix.loss() == pytest.approx(sum(by_hand) / 3)
    assert matrix.summary(["a", "b"])["loss"] == pytest.approx(sum(by_hand) / 3)


def test_bootstrapped_ce_keeps_hard_pixels_or_the_top_k():
    logits = torch.zeros(1, 2, 4, 4)
    logits[0, 0] = 10.0  # confident class 0 everywhere
    target = torch.zeros(1, 4, 4, dtype=torch.int64)
    target[0, 0, :2] = 1  # two hard pixels
    loss = BootstrappedCrossEntropy(threshold=0.3, top_fraction=1 / 16)(logits, target)
    assert loss.item() == pytest.approx(10.0, abs=1e-3)  # mean over the two hard pixels only
    easy = BootstrappedCrossEntropy(threshold=0.3, top_fraction=1 / 4)(logits, torch.zeros_like(target))
    assert easy.item() == pytest.approx(torch.nn.functional.softplus(torch.tensor(-10.0)).item(), rel=1e-3)


def test_official_schedule_warmup_times_poly():
    factor = lambda step: warmup_poly_factor(step, 1000, 100, 0.1, 0.9)  # noqa: E731
    assert factor(0) == pytest.approx(0.1)
    assert factor(50) == pytest.approx(0.55 * 0.95**0.9)
    assert factor(100) == pytest.approx(0.9**0.9)
    assert factor(1000) == 0.0


def test_official_schedule_at_every_iteration_of_the_paper_recipe():
    """lr(it) = lr * (1 - it/total)^0.9 * (0.1 + 0.9 * it/3000) for it < 3000, then lr * (1 - it/total)^0.9
    (REGSEG.md, the official 1000-epoch Cityscapes schedule: 2975 images, batch 8, drop_last)."""
    total, warmup = 1000 * (2975 // 8), 3000
    for it in range(0, total + 1):
        poly = (1 - it / total) ** 0.9
        official = poly * (0.1 + 0.9 * it / warmup) if it < warmup else poly
        assert warmup_poly_factor(it, total, warmup, 0.1, 0.9) == pytest.approx(
            official, rel=1e-12, abs=1e-15
        )


def test_no_weight_decay_on_batchnorm():
    model = RegSeg(load_arch(TINY))
    decay, no_decay = parameter_groups(model, 1e-4)
    bn_params = {
        id(p) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()
    }
    assert {id(p) for p in no_decay["params"]} == bn_params
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0


def test_sampler_shards_pads_and_skips():
    full = ResumableDistributedSampler(10, seed=3, rank=0, world_size=1)
    full.set_epoch(2)
    order = list(full)
    assert sorted(order) == list(range(10))
    full.set_epoch(2, start_batch=2, batch_size=3)
    assert list(full) == order[6:]
    full.set_epoch(3)
    assert list(full) != order  # reshuffled per epoch
    ranks = [ResumableDistributedSampler(10, seed=3, rank=r, world_size=3) for r in range(3)]
    for sampler in ranks:
        sampler.set_epoch(2)
    shards = [list(s) for s in ranks]
    assert all(len(shard) == 4 for shard in shards)
    assert {index for shard in shards for index in shard} == set(range(10))


def test_seeded_augmentation_is_a_function_of_epoch_and_index():
    class Noise(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return torch.rand(3)

    wrapped = SeededAugmentation(Noise(), seed=0)
    before = torch.get_rng_state()
    first = wrapped[1]
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is untouched
    assert torch.equal(wrapped[1], first) and not torch.equal(wrapped[2], first)
    wrapped.epoch = 1
    assert not torch.equal(wrapped[1], first)


def test_checkpoint_round_trip_with_rng_state(tmp_path):
    torch.manual_seed(5)
    state = {"model": {"w": torch.arange(3.0)}, "rng": rng_state(), "step": 7}
    expected = torch.rand(2)
    path = save_checkpoint(tmp_path / "ckpt" / "last.pt", state)
    loaded = load_checkpoint(path)  # weights_only=True
    set_rng_state(loaded["rng"])
    assert torch.equal(torch.rand(2), expected)
    assert loaded["step"] == 7 and [p.name for p in path.parent.iterdir()] == ["last.pt"]
    with pytest.raises(UserError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "absent.pt")


def test_initialise_from_released_weights_reinitialises_a_different_classifier(tmp_path):
    spec = load_arch(TINY)
    source = RegSeg(spec.with_num_classes(19))
    path = tmp_path / "released.pth"
    torch.save(to_official_state_dict(source), path)
    target = RegSeg(spec.with_num_classes(11))
    classifier_before = target.decoder.classifier.weight.clone()
    assert initialize_from(target, path) == ["decoder.classifier.weight", "decoder.classifier.bias"]
    assert torch.equal(target.decoder.classifier.weight, classifier_before)
    assert torch.equal(
        target.body.blocks[5].conv2.convs[1].weight, source.body.blocks[5].conv2.convs[1].weight
    )


def test_initialise_from_dilnas_checkpoint(tmp_path):
    spec = load_arch(TINY)
    source = RegSeg(spec)
    save_checkpoint(tmp_path / "last.pt", {"format": "dilnas.checkpoint", "model": source.state_dict()})
    target = RegSeg(spec)
    assert initialize_from(target, tmp_path / "last.pt") == []
    assert torch.equal(target.stem.conv.weight, source.stem.conv.weight)
    other = RegSeg(load_arch(EXP48_PATH))
    with pytest.raises(UserError, match="state dict does not fit exp48_decoder26"):
        initialize_from(other, tmp_path / "last.pt")


def test_stop_signals_defer_then_hand_over_to_the_previous_handler():
    seen: list[int] = []
    originals = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGUSR2)}
    scheduler = lambda signum, frame: seen.append(signum)  # noqa: E731  (like submitit's requeue handler)
    signal.signal(signal.SIGUSR2, scheduler)
    try:
        with StopSignals() as stop:
            os.kill(os.getpid(), signal.SIGUSR2)  # recorded, not acted on: the loop saves first
            assert seen == [] and stop.pending(DistInfo(), torch.device("cpu")) == signal.SIGUSR2
            stop.hand_over(
                signal.SIGUSR2, 7, Path("last.pt"), DistInfo()
            )  # the scheduler's handler returns: go on
            assert seen == [signal.SIGUSR2] and stop.received == 0

            os.kill(os.getpid(), signal.SIGTERM)  # no handler before ours: the run stops
            with pytest.raises(
                RunInterrupted, match=r"SIGTERM at step 9; saved last.pt; .*resume=true"
            ) as info:
                stop.hand_over(stop.pending(DistInfo(), torch.device("cpu")), 9, Path("last.pt"), DistInfo())
            assert info.value.exit_status == 128 + signal.SIGTERM
            # With several ranks all stop: rank 0 hands over (submitit requeues from there), the others do not.
            for rank, handed_over in [(1, []), (0, [signal.SIGUSR2])]:
                seen.clear()
                with pytest.raises(RunInterrupted):
                    stop.hand_over(signal.SIGUSR2, 11, Path("last.pt"), DistInfo(rank=rank, world_size=2))
                assert seen == handed_over
        assert signal.getsignal(signal.SIGUSR2) is scheduler
        assert signal.getsignal(signal.SIGTERM) is originals[signal.SIGTERM]
    finally:
        for sig, handler in originals.items():
            signal.signal(sig, handler)


def test_stop_signals_leave_an_ignored_signal_ignored():
    original = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        with StopSignals() as stop:
            assert signal.getsignal(signal.SIGUSR2) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGUSR2)
            assert stop.received == 0
    finally:
        signal.signal(signal.SIGUSR2, original)


def test_run_log_rewind_forgets_records_after_the_checkpoint(tmp_path):
    from dilnas.train.run_dir import ARCH_HISTORY, METRICS, RunDir
    from dilnas.train.run_log import RunLogger

    run_dir = RunDir(tmp_path / "run")
    logger = RunLogger(run_dir, jsonl=(METRICS, ARCH_HISTORY))
    for step in (10, 20, 30):
        logger.record(METRICS, {"step": step, "loss": float(step)})
        logger.record(ARCH_HISTORY, {"step": step})
    logger.rewind(20)  # resumed from a checkpoint at step 20: step 30 will be logged again
    logger.record(METRICS, {"step": 30, "loss": -1.0})
    logger.close()
    lines = [json.loads(line) for line in run_dir.metrics.read_text().splitlines()]
    assert [(r["step"], r["loss"]) for r in lines] == [(10, 10.0), (20, 20.0), (30, -1.0)]
    assert [json.loads(line)["step"] for line in run_dir.arch_history.read_text().splitlines()] == [10, 20]
    assert not run_dir.tensorboard.exists()  # nothing went to TensorBoard: only records were written


def test_architect_step_moves_the_logits_and_not_the_weights():
    from dilnas.models.supernet import SuperNet
    from dilnas.spec.options import SearchConfig
    from dilnas.spec.space import load_space
    from dilnas.train.architect import Architect

    torch.manual_seed(0)
    supernet = SuperNet(load_space("synthetic_tiny"))
    weights = torch.optim.SGD(supernet.weight_parameters(), lr=0.05, momentum=0.9)
    criterion = torch.nn.CrossEntropyLoss(ignore_index=255)
    architect = Architect(supernet, supernet, criterion, SearchConfig(arch_lr=0.05))
    batch = (torch.randn(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64)))
    before_weights = {k: v.clone() for k, v in supernet.state_dict().items() if not k.startswith("alphas.")}
    before_logits = [alpha.detach().clone() for alpha in supernet.alphas]
    supernet.train()
    architect.step(batch, batch, weights)
    assert all(not torch.equal(a, b) for a, b in zip(supernet.alphas, before_logits, strict=True))
    after = supernet.state_dict()
    for key, value in before_weights.items():
        if "running" in key or "num_batches_tracked" in key:
            continue  # BatchNorm statistics follow the forward pass in training mode
        assert torch.equal(after[key], value), key


def test_miou_reduced_leaves_out_truck_bus_and_train_for_cityscapes_only():
    from dilnas.data.cityscapes import CLASS_NAMES
    from dilnas.train.metrics import ConfusionMatrix

    matrix = ConfusionMatrix(19)
    target = torch.arange(19).repeat(10)
    prediction = target.clone()
    for name in ("truck", "bus", "train"):  # every pixel of these classes predicted as road
        prediction[target == CLASS_NAMES.index(name)] = 0
    matrix.update(prediction, target)
    summary = matrix.summary(CLASS_NAMES)
    road = 10 / 40  # 10 road pixels right out of 40 predicted or labelled road
    assert summary["miou"] == pytest.approx((road + 15) / 19 * 100)
    assert summary["miou_reduced"] == pytest.approx((road + 15) / 16 * 100)
    other = ConfusionMatrix(3)
    other.update(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]))
    assert "miou_reduced" not in other.summary(["a", "b", "c"])


@pytest.mark.parametrize(
    ("schedule", "every", "epochs", "expected"),
    [
        ("interval", 10, 40, [10, 20, 30, 40]),
        ("official", 10, 100, [25, 50, 71, *range(72, 101)]),
        ("official", 10, 20, list(range(1, 21))),  # shorter than the last 30: every epoch
    ],
)
def test_eval_schedule(schedule, every, epochs, expected):
    from types import SimpleNamespace

    from dilnas.spec.options import EvalSchedule
    from dilnas.train.trainer import Trainer

    steps_per_epoch = 3
    fake = SimpleNamespace(
        config=SimpleNamespace(eval_schedule=EvalSchedule(schedule), eval_every_epochs=every),
        steps_per_epoch=steps_per_epoch,
        total_steps=epochs * steps_per_epoch,
    )
    evaluated = [step for step in range(1, epochs * steps_per_epoch + 1) if Trainer.evaluates_at(fake, step)]
    assert [step // steps_per_epoch for step in evaluated] == expected
    assert all(step % steps_per_epoch == 0 for step in evaluated)
