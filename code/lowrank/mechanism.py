"""Why the needed rank follows the number of classes: what training adds to W lies near a
subspace of dimension C − 1 that the output layer fixes.

The loss gradient at W's output is D fc3ᵀ (p − y), with D the ReLU (and dropout) mask of the
layer above W, p the predicted probabilities and y the one-hot label. Since p − y sums to zero,
fc3ᵀ (p − y) lies in F = {fc3ᵀ v : Σ v = 0}, a subspace of dimension C − 1 of the hidden
units. Each step adds to W a sum of such vectors (masked) times W's inputs, so without the
masks every column of W − W₀ would lie in F. The masks differ from image to image, so this is
a tendency to measure, not a theorem: `head_share` is the share of ‖W − W₀‖²_F that lies in F.

    F = head_subspace(model.fc3.weight)          # hidden x (C − 1), orthonormal
    head_share(W - W0, F)                        # share of the update inside F
    top_share(W - W0, C - 1)                     # the most any (C − 1)-dim subspace can hold
    (C - 1) / hidden                             # what a random one holds, on average
"""

import torch


def head_subspace(head: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis (hidden × (C − 1)) of F = {headᵀ v : Σ v = 0}, for the C × hidden
    weight `head` of the output layer: the span of its rows less their mean."""
    C = head.shape[0]
    centred = (head - head.mean(0, keepdim=True)).double()
    Q, _, _ = torch.linalg.svd(centred.T, full_matrices=False)
    return Q[:, : C - 1]


def head_share(D: torch.Tensor, Q: torch.Tensor) -> float:
    """‖Q Qᵀ D‖²_F / ‖D‖²_F: the share of D's squared norm in the column space of the
    orthonormal Q (the share of the update of W that lies in the head's subspace)."""
    D = D.double()
    return ((Q.T.double() @ D).square().sum() / D.square().sum()).item()


def top_share(D: torch.Tensor, k: int) -> float:
    """The share of ‖D‖²_F in D's own k leading left singular directions: the largest share
    any k-dimensional subspace can hold (Eckart–Young)."""
    s2 = torch.linalg.svdvals(D.double()).square()
    return (s2[:k].sum() / s2.sum()).item()


def random_share(D: torch.Tensor, k: int, generator: torch.Generator) -> float:
    """head_share of D in a random k-dimensional subspace (uniform: the Q of a Gaussian
    matrix). Its expectation is k / rows of D, whatever D."""
    G = torch.randn(D.shape[0], k, generator=generator, dtype=torch.float64)
    return head_share(D, torch.linalg.qr(G).Q)


def update_shares(W: torch.Tensor, W0: torch.Tensor, head: torch.Tensor) -> dict[str, float]:
    """The update W − W₀'s share in the head's subspace, and the most any subspace of the
    same dimension holds (the training record's head_share and top_share)."""
    D = (W - W0).detach()
    if not D.any():
        return dict(head_share=float("nan"), top_share=float("nan"))
    Q = head_subspace(head.detach())
    return dict(head_share=head_share(D, Q), top_share=top_share(D, Q.shape[1]))
