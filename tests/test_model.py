import pytest
import torch

from lowrank import FactorisedEvaluator, LowRankLinear, MnistFCNet, evaluate, factorised


def make_net(seed=0):
    torch.manual_seed(seed)
    return MnistFCNet().eval()


def batch(n=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 784, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_shapes_and_log_probabilities():
    net = make_net()
    x, _ = batch()
    out = net(x)
    assert out.shape == (32, 10)
    assert torch.allclose(out.exp().sum(1), torch.ones(32), atol=1e-5)
    assert net.W.shape == (1000, 1000) and net.W is net.fc2.weight
    assert (
        sum(p.numel() for p in net.parameters())
        == 784 * 1000 + 1000 + 1000 * 1000 + 1000 + 1000 * 10 + 10
    )


def test_low_rank_linear_computes_x_Vt_Ut_plus_b():
    g = torch.Generator().manual_seed(2)
    U, V, b = (
        torch.randn(6, 3, generator=g),
        torch.randn(3, 5, generator=g),
        torch.randn(6, generator=g),
    )
    x = torch.randn(4, 5, generator=g)
    layer = LowRankLinear(U, V, b)
    assert layer.rank == 3
    assert torch.allclose(layer(x), x @ (U @ V).T + b, atol=1e-5)


def test_factorised_network_equals_dense_when_UV_equals_W():
    net = make_net()
    W = net.W.detach()
    U, V = W.clone(), torch.eye(1000)  # an exact (full-rank) factorisation W = U V
    x, y = batch()
    compressed = factorised(net, U, V)
    assert torch.allclose(compressed(x), net(x), atol=1e-4)
    (loss_c, acc_c), (loss_d, acc_d) = evaluate(compressed, x, y), evaluate(net, x, y)
    assert abs(loss_c - loss_d) < 1e-5 and acc_c == acc_d


def test_factorised_does_not_mutate_the_trained_model():
    net = make_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    factorised(net, torch.zeros(1000, 2), torch.zeros(2, 1000))
    assert isinstance(net.fc2, torch.nn.Linear)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_evaluator_matches_full_forward_pass():
    net = make_net()
    x, y = batch(200)
    g = torch.Generator().manual_seed(3)
    U, V = torch.randn(1000, 7, generator=g) * 0.05, torch.randn(7, 1000, generator=g) * 0.05
    ev = FactorisedEvaluator(net, x, y)
    loss, acc = ev(U, V)
    ref_loss, ref_acc = evaluate(factorised(net, U, V), x, y)
    assert abs(loss - ref_loss) < 1e-5 and acc == ref_acc
    dense_loss, dense_acc = ev.dense()
    ref_loss, ref_acc = evaluate(net, x, y)
    assert abs(dense_loss - ref_loss) < 1e-5 and dense_acc == ref_acc


def test_evaluate_leaves_training_mode_as_it_was_and_ignores_dropout():
    net = make_net().train()
    x, y = batch()
    assert evaluate(net, x, y) == evaluate(net, x, y)  # no dropout noise at evaluation
    assert net.training


def test_factorised_training_variant_has_rank_r_and_fewer_parameters():
    torch.manual_seed(0)
    net = MnistFCNet(rank=5)
    assert isinstance(net.fc2, LowRankLinear) and net.fc2.rank == 5
    assert torch.linalg.matrix_rank(net.W.detach()) == 5
    dense = sum(p.numel() for p in MnistFCNet().parameters())
    assert dense - sum(p.numel() for p in net.parameters()) == 1000 * 1000 - 5 * 2000
    x, _ = batch()
    assert net(x).shape == (32, 10)


BAD_CONSTRUCTIONS = {  # id -> (call, the argument's name)
    "dropout 1": (lambda: MnistFCNet(dropout=1.0), "dropout"),
    "dropout nan": (lambda: MnistFCNet(dropout=float("nan")), "dropout"),
    "dropout True": (lambda: MnistFCNet(dropout=True), "dropout"),
    "rank 0": (lambda: MnistFCNet(rank=0), "rank"),
    "rank 2000": (lambda: MnistFCNet(rank=2000), "rank"),
    "hidden 0": (lambda: MnistFCNet(hidden=0), "hidden"),
    "bias length": (
        lambda: LowRankLinear(torch.ones(6, 3), torch.ones(3, 5), torch.ones(5)),
        "bias",
    ),
    "nan U": (lambda: LowRankLinear(torch.full((6, 3), float("nan")), torch.ones(3, 5)), "U"),
    "inf bias": (
        lambda: LowRankLinear(torch.ones(6, 3), torch.ones(3, 5), torch.full((6,), float("inf"))),
        "bias",
    ),
    "mixed V": (
        lambda: LowRankLinear(torch.ones(6, 3), torch.ones(3, 5, dtype=torch.float64)),
        "V",
    ),
    "mixed bias": (
        lambda: LowRankLinear(
            torch.ones(6, 3), torch.ones(3, 5), torch.ones(6, dtype=torch.float64)
        ),
        "bias",
    ),
    "shapes": (lambda: LowRankLinear(torch.ones(6, 3), torch.ones(4, 5)), "U and V"),
    "1-D U": (lambda: LowRankLinear(torch.ones(6), torch.ones(3, 5)), "U"),
}


@pytest.mark.parametrize("case", BAD_CONSTRUCTIONS.values(), ids=BAD_CONSTRUCTIONS.keys())
def test_bad_construction_raises_a_one_line_value_error_naming_the_argument(case):
    call, name = case
    with pytest.raises(ValueError) as error:
        call()
    message = str(error.value)
    assert message.startswith(f"{name} must be ") and ", got " in message and "\n" not in message


def test_evaluator_rejects_nan_images_empty_sets_and_mismatched_factors():
    net = make_net()
    x, y = batch()
    nan_x = x.clone()
    nan_x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="^x must be finite"):
        FactorisedEvaluator(net, nan_x, y)
    with pytest.raises(ValueError, match="^x must be non-empty"):
        FactorisedEvaluator(net, x[:0], y[:0])  # was a division by zero
    with pytest.raises(ValueError, match="^y must be 32 integer labels"):
        FactorisedEvaluator(net, x, y[:5])
    ev = FactorisedEvaluator(net, x, y)
    U, V = torch.zeros(1000, 2), torch.zeros(2, 1000)
    with pytest.raises(ValueError, match="^U must be finite"):
        ev(torch.full((1000, 2), float("nan")), V)
    with pytest.raises(ValueError, match=r"^U, V must be of shapes \(1000, r\) and \(r, 1000\)"):
        ev(U, V[:, :10])
    with pytest.raises(ValueError, match="^U, V must be torch.float32 on cpu like the model"):
        ev(U.double(), V.double())


BAD_EVALUATIONS = {
    "batch size -1": (lambda x, y: {"batch_size": -1}, r"^batch_size must be an integer >= 1"),
    "batch size 0": (lambda x, y: {"batch_size": 0}, r"^batch_size must be an integer >= 1"),
    "batch size 1.5": (lambda x, y: {"batch_size": 1.5}, r"^batch_size must be an integer"),
    "NaN image": (
        lambda x, y: {"x": x.index_fill(1, torch.tensor([3]), float("nan"))},
        "^x must be finite",
    ),
    "width": (lambda x, y: {"x": x[:, :700]}, r"^x must be of width 784, got width 700$"),
    "label 10": (
        lambda x, y: {"y": y.index_fill(0, torch.tensor([0]), 10)},
        r"^y must be labels in 0 … 9, got labels in 0 … 10$",
    ),
    "label -1": (
        lambda x, y: {"y": y.index_fill(0, torch.tensor([0]), -1)},
        r"^y must be labels in 0 … 9",
    ),
    "lengths": (
        lambda x, y: {"y": y[:5]},
        r"^y must be 32 integer labels, got torch.int64 of shape \(5,\)$",
    ),
    "float labels": (lambda x, y: {"y": y.float()}, r"^y must be 32 integer labels"),
    "list": (lambda x, y: {"x": x.tolist()}, r"^x must be a torch.Tensor, got list$"),
}


@pytest.mark.parametrize("case", BAD_EVALUATIONS.values(), ids=BAD_EVALUATIONS.keys())
def test_evaluate_refuses_what_it_cannot_score_in_one_line(case):
    change, message = case
    x, y = batch()
    args = {"x": x, "y": y, **change(x, y)}
    with pytest.raises(ValueError, match=message):
        evaluate(make_net(), **args)
    if "batch_size" not in args:  # the evaluator scores the same sets
        with pytest.raises(ValueError, match=message):
            FactorisedEvaluator(make_net(), args["x"], args["y"])


def test_evaluator_refuses_factors_that_are_not_tensors():
    x, y = batch()
    ev = FactorisedEvaluator(make_net(), x, y)
    with pytest.raises(ValueError, match="^U must be a torch.Tensor, got list$"):
        ev([[0.0] * 2] * 1000, torch.zeros(2, 1000))
    with pytest.raises(ValueError, match="^V must be a torch.Tensor, got list$"):
        ev(torch.zeros(1000, 2), [[0.0] * 1000] * 2)


def test_factorised_checks_the_model_and_that_U_V_fit_its_W():
    net = make_net()
    with pytest.raises(ValueError, match="^model must be a MnistFCNet, got list$"):
        factorised([net], torch.zeros(1000, 2), torch.zeros(2, 1000))
    with pytest.raises(ValueError, match=r"^U, V must be of shapes \(1000, r\) and \(r, 1000\)"):
        factorised(net, torch.zeros(1000, 2), torch.zeros(2, 500))  # was accepted
    with pytest.raises(ValueError, match="^U, V must be torch.float32 on cpu like the model"):
        factorised(net, torch.zeros(1000, 2).double(), torch.zeros(2, 1000).double())
    with pytest.raises(ValueError, match="^U must be a torch.Tensor, got list$"):
        factorised(net, [[0.0] * 2] * 1000, torch.zeros(2, 1000))
