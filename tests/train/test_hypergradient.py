"""The architect's hypergradient against an exact reference built independently here: the virtual weight
step w'(α) = w − ξ (μ·buf + ∇_w L_train(w, α) + λ·w) as a differentiable function of the logits (checked
against a real SGD step), L_val(w'(α), α) by ``torch.func.functional_call``, its total derivative by autograd.
Float64 throughout, so the tolerance can be tight."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from dilnas.models.supernet import SuperNet
from dilnas.spec.options import SearchConfig, SearchOrder
from dilnas.spec.space import load_space
from dilnas.train.architect import Architect
from dilnas.train.schedule import parameter_groups
from dilnas.utils.errors import UserError

Batch = tuple[torch.Tensor, torch.Tensor]
TOLERANCE = 1e-4


class TinySuperNet(nn.Module):
    """Two searchable layers, each a softmax(α)-weighted sum of conv -> BN -> ReLU candidates of different
    dilation, between a stem and a 1x1 head: the supernet's interface (alphas, temperature,
    arch_parameters, weight_parameters) on a network small enough for exact float64 checks."""

    def __init__(self, channels: int = 4, classes: int = 3, rates: tuple[int, ...] = (1, 2, 3)):
        super().__init__()
        self.temperature = 1.0
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.stem_bn = nn.BatchNorm2d(channels)
        self.layers = nn.ModuleList()
        for _ in range(2):
            self.layers.append(
                nn.ModuleList(
                    nn.Sequential(
                        nn.Conv2d(channels, channels, 3, padding=rate, dilation=rate, bias=False),
                        nn.BatchNorm2d(channels),
                        nn.ReLU(),
                    )
                    for rate in rates
                )
            )
        self.head = nn.Conv2d(channels, classes, 1)
        self.alphas = nn.ParameterList(nn.Parameter(0.5 * torch.randn(len(rates))) for _ in range(2))
        with torch.no_grad():  # BN affine away from (1, 0), so its parameters matter to the check
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.3, 0.3)

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas)

    def weight_parameters(self):
        arch = {id(p) for p in self.alphas}
        return (p for p in self.parameters() if id(p) not in arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_bn(self.stem(x)))
        for candidates, alpha in zip(self.layers, self.alphas, strict=True):
            mix = F.softmax(alpha / self.temperature, dim=0)
            x = sum(weight * candidate(x) for weight, candidate in zip(mix, candidates, strict=True))
        return self.head(x)


def batch(generator: torch.Generator, size: int = 16, classes: int = 3, count: int = 4) -> Batch:
    images = torch.randn(count, 3, size, size, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, classes, (count, size, size), generator=generator)
    labels[:, :2] = 255  # some ignored pixels, as in the real data
    return images, labels


def weight_optimizer(net: nn.Module, momentum: float, decay: float, lr: float = 0.1) -> torch.optim.SGD:
    return torch.optim.SGD(
        parameter_groups(net, decay, exclude=net.arch_parameters()), lr=lr, momentum=momentum
    )


def warm_up(net: nn.Module, optimizer: torch.optim.SGD, criterion: nn.Module, seed: int) -> None:
    """Two real weight steps: the optimizer then holds momentum buffers and the weights have moved."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(2):
        images, labels = batch(generator)
        optimizer.zero_grad(set_to_none=True)
        criterion(net(images), labels).backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    for alpha in net.arch_parameters():
        alpha.grad = None


def entropy(alphas: list[torch.Tensor], temperature: float) -> torch.Tensor:
    values = []
    for alpha in alphas:
        p = F.softmax(alpha / temperature, dim=0)
        values.append(-(p * torch.log(p)).sum())
    return torch.stack(values).mean()


def exact_hypergradient(
    net: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.SGD,
    train: Batch,
    heldout: Batch,
    entropy_weight: float,
    unrolled_lr: float | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor], float]:
    """(d/dα of L_val(w'(α), α) + entropy term, the same without the path through w', L_val(w', α)). The
    network's state is restored afterwards."""
    state = copy.deepcopy(net.state_dict())
    names = {id(p): name for name, p in net.named_parameters()}
    alphas = net.arch_parameters()
    entries = [
        (w, unrolled_lr or group["lr"], group["momentum"], group["weight_decay"])
        for group in optimizer.param_groups
        for w in group["params"]
    ]
    weights = [w for w, *_ in entries]
    gradients = torch.autograd.grad(
        criterion(net(train[0]), train[1]), weights, create_graph=True, allow_unused=True
    )
    unrolled = {}
    for (w, lr, momentum, decay), gradient in zip(entries, gradients, strict=True):
        if gradient is None:  # unused (a candidate the gumbel sample skipped): SGD leaves it
            unrolled[names[id(w)]] = w.detach()
            continue
        buffer = optimizer.state[w].get("momentum_buffer") if w in optimizer.state else None
        carried = momentum * buffer if buffer is not None else torch.zeros_like(w)
        unrolled[names[id(w)]] = w.detach() - lr * (carried + gradient + decay * w.detach())
    if unrolled_lr is None:
        check_against_a_real_sgd_step(net, optimizer, criterion, train, unrolled)

    def objective(parameters: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        loss = criterion(functional_call(net, parameters, (heldout[0],)), heldout[1])
        return loss + entropy_weight * entropy(alphas, net.temperature), loss

    value, loss = objective(unrolled)
    total = torch.autograd.grad(value, alphas)
    direct = torch.autograd.grad(objective({k: v.detach() for k, v in unrolled.items()})[0], alphas)
    net.load_state_dict(state)  # the BN statistics the forwards above updated
    return list(total), list(direct), loss.item()


def check_against_a_real_sgd_step(
    net: nn.Module,
    optimizer: torch.optim.SGD,
    criterion: nn.Module,
    train: Batch,
    unrolled: dict[str, torch.Tensor],
) -> None:
    """The reference's w' is the step the weight optimizer really takes next."""
    for module in net.modules():  # the supernet keeps its last mixture weights, graph and all
        if getattr(module, "mix", None) is not None:
            module.mix = module.mix.detach()
    twin = copy.deepcopy(net)
    twin_optimizer = type(optimizer)(
        parameter_groups(twin, 0.0, exclude=twin.arch_parameters()), lr=optimizer.defaults["lr"]
    )
    # A copy: load_state_dict would share the buffers, and the step below would change them.
    twin_optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    criterion(twin(train[0]), train[1]).backward()
    twin_optimizer.step()
    for name, w in twin.named_parameters():
        if name in unrolled:
            torch.testing.assert_close(w.detach(), unrolled[name].detach(), rtol=1e-12, atol=1e-12)


def relative_error(actual: list[torch.Tensor], expected: list[torch.Tensor]) -> float:
    a, e = torch.cat([t.reshape(-1) for t in actual]), torch.cat([t.reshape(-1) for t in expected])
    return float((a - e).norm() / e.norm())


def setup(
    order: SearchOrder = SearchOrder.second,
    momentum: float = 0.9,
    decay: float = 0.05,
    entropy_weight: float = 0.1,
    unrolled_lr: float | None = None,
    net: nn.Module | None = None,
    seed: int = 0,
) -> tuple[nn.Module, Architect, torch.optim.SGD, Batch, Batch]:
    torch.manual_seed(seed)
    net = (net or TinySuperNet()).double().train()
    criterion = nn.CrossEntropyLoss(ignore_index=255)
    optimizer = weight_optimizer(net, momentum, decay)
    if momentum:
        warm_up(net, optimizer, criterion, seed + 1)
    config = SearchConfig(order=order, entropy_weight=entropy_weight, unrolled_lr=unrolled_lr, arch_lr=0.05)
    architect = Architect(net, net, criterion, config)
    generator = torch.Generator().manual_seed(seed + 2)
    return net, architect, optimizer, batch(generator), batch(generator)


@pytest.mark.parametrize(
    ("momentum", "decay", "unrolled_lr"),
    [(0.0, 0.0, None), (0.9, 0.05, None), (0.9, 0.05, 0.03)],
    ids=["plain-sgd", "momentum-and-decay", "unrolled-lr"],
)
def test_second_order_hypergradient_matches_the_exact_total_derivative(momentum, decay, unrolled_lr):
    net, architect, optimizer, train, heldout = setup(momentum=momentum, decay=decay, unrolled_lr=unrolled_lr)
    expected, direct, loss = exact_hypergradient(
        net, architect.criterion, optimizer, train, heldout, 0.1, unrolled_lr
    )
    # The path through w' matters here (else the check below could not tell a missing term).
    assert relative_error(direct, expected) > 10 * TOLERANCE
    actual, heldout_loss = architect.hypergradient(train, heldout, optimizer)
    assert relative_error(actual, expected) <= TOLERANCE
    assert heldout_loss.item() == pytest.approx(loss, rel=1e-10)  # the held-out loss at w'


def test_momentum_and_decay_change_the_second_order_hypergradient():
    net, architect, optimizer, train, heldout = setup(momentum=0.9, decay=0.05)
    with_state, _ = architect.hypergradient(train, heldout, optimizer)
    plain = torch.optim.SGD(
        parameter_groups(net, 0.0, exclude=net.arch_parameters()), lr=optimizer.defaults["lr"]
    )
    without, _ = architect.hypergradient(train, heldout, plain)
    assert relative_error(without, with_state) > 10 * TOLERANCE
    expected_plain, _, _ = exact_hypergradient(net, architect.criterion, plain, train, heldout, 0.1)
    assert relative_error(without, expected_plain) <= TOLERANCE


def test_second_order_hypergradient_step_leaves_weights_statistics_and_momentum_untouched():
    net, architect, optimizer, train, heldout = setup()
    before = {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("alphas.")}
    assert any("running_mean" in k for k in before)
    buffers = {id(p): s["momentum_buffer"].clone() for p, s in optimizer.state.items()}
    alphas = [a.detach().clone() for a in net.arch_parameters()]
    expected, expected_loss = architect.hypergradient(train, heldout, optimizer)
    expected_loss = expected_loss.item()

    loss = architect.step(train, heldout, optimizer)

    assert loss == pytest.approx(expected_loss, rel=1e-10)
    after = net.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    for p, s in optimizer.state.items():
        assert torch.equal(s["momentum_buffer"], buffers[id(p)])
    assert all(p.grad is None for p in net.weight_parameters())
    # The step's gradient on the logits is the hypergradient, and Adam moved them.
    assert relative_error([a.grad for a in net.arch_parameters()], expected) <= 1e-12
    assert all(not torch.equal(a.detach(), old) for a, old in zip(net.arch_parameters(), alphas, strict=True))


def test_first_order_hypergradient_is_the_gradient_of_the_heldout_loss():
    net, architect, optimizer, train, heldout = setup(order=SearchOrder.first)
    alphas = net.arch_parameters()
    state = copy.deepcopy(net.state_dict())
    loss = architect.criterion(net(heldout[0]), heldout[1])
    expected = torch.autograd.grad(loss + 0.1 * entropy(alphas, net.temperature), alphas)
    net.load_state_dict(state)
    # Not the second order's: the virtual step would change it.
    second, _, _ = exact_hypergradient(net, architect.criterion, optimizer, train, heldout, 0.1)
    assert relative_error(second, list(expected)) > 10 * TOLERANCE

    returned = architect.step(train, heldout, optimizer)

    assert relative_error([a.grad for a in alphas], list(expected)) <= 1e-12
    assert returned == pytest.approx(loss.item(), rel=1e-12)


def test_second_order_hypergradient_refuses_an_optimizer_it_cannot_unroll():
    net, architect, _, train, heldout = setup(momentum=0.0)
    nesterov = torch.optim.SGD(net.weight_parameters(), lr=0.1, momentum=0.9, nesterov=True)
    with pytest.raises(ValueError, match="nesterov"):
        architect.hypergradient(train, heldout, nesterov)


def test_second_order_hypergradient_refuses_sync_batchnorm():
    """SyncBatchNorm (trainer.sync_bn under DDP) has no double backward: refused when the architect is built."""
    net = nn.SyncBatchNorm.convert_sync_batchnorm(TinySuperNet())
    criterion = nn.CrossEntropyLoss(ignore_index=255)
    with pytest.raises(UserError, match=r"trainer\.sync_bn=true"):
        Architect(net, net, criterion, SearchConfig(order=SearchOrder.second))
    Architect(net, net, criterion, SearchConfig(order=SearchOrder.first))  # first order needs none


@pytest.mark.parametrize(
    ("relaxation", "shared_kernel"), [("softmax", True), ("gumbel", True), ("gumbel", False)]
)
def test_supernet_second_order_hypergradient_matches_the_exact_total_derivative(relaxation, shared_kernel):
    """The real supernet (synthetic_tiny): every RegSeg op supports the double backward, and with a kernel
    per candidate the weights the gumbel sample skipped (no gradient) are handled."""
    torch.manual_seed(0)
    supernet = SuperNet(load_space("synthetic_tiny"), relaxation, shared_kernel)
    with torch.no_grad():
        for alpha in supernet.alphas:
            alpha.normal_(0.0, 0.5)
    supernet.sample_seed = 1
    net, architect, optimizer, _, _ = setup(net=supernet)
    generator = torch.Generator().manual_seed(3)
    train, heldout = batch(generator, size=64, count=2), batch(generator, size=64, count=2)
    expected, direct, _ = exact_hypergradient(net, architect.criterion, optimizer, train, heldout, 0.1)
    assert relative_error(direct, expected) > 10 * TOLERANCE
    actual, _ = architect.hypergradient(train, heldout, optimizer)
    assert relative_error(actual, expected) <= TOLERANCE
