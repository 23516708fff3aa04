"""Confidence-aware token trees: SWIFT's dynamic verification.

Besides the drafter's top-1 chain d1..dk, keep at each depth a few runner-up tokens as leaf
siblings of the chain token, more where the drafter was unsure. The full model checks every node
in one pass: each node sees the prefix, the root (the pending token) and its own ancestors only,
at position n + depth. Node order is the chain first (depth 1..k), then the siblings, so an
accepted path is always a prefix of the chain plus at most one sibling.

Sampling stays lossless with recursive rejection sampling without replacement: at each depth the
candidates are successive draws from q without replacement (the chain token first); candidate x
is accepted with probability min(1, p(x)/q(x)); on rejection p <- normalize(max(p - q, 0)) and x
is removed from q (q renormalized); if every candidate is rejected, the token is drawn from p.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

GREEDY_SIBLINGS = ((0.95, 3), (0.8, 5), (0.5, 8), (0.0, 10))  # top-1 prob above -> candidates kept
# On a CPU every verified node costs: a 16-node pass is 1.42 full passes there, a 4-node one 1.23
# (benchmarks/step_costs.py), while on a GPU extra nodes are nearly free. With fewer runner-ups the
# lab model kept the same tokens per pass (4.9 on story) and ran 1.45x instead of 1.38x.
CPU_GREEDY_SIBLINGS = ((0.95, 1), (0.8, 2), (0.5, 3), (0.0, 4))
SAMPLING_SIBLINGS = ((0.95, 1), (0.8, 3), (0.5, 5), (0.0, 10))


def candidates_for(confidence: float, table=GREEDY_SIBLINGS) -> int:
    """How many candidates (chain token included) to keep at a depth with this top-1 probability."""
    for threshold, count in table:
        if confidence > threshold:
            return count
    return table[-1][1]


@dataclass
class DraftTree:
    """One step's draft: the top-1 `chain`, per depth the runner-up `siblings` (leaves), the drafter's
    distributions `draft_probs` (sampling only), who drafted it (`source`) and why the chain ends (`stop`).
    Nodes are numbered chain first, then the siblings depth by depth (`tokens`, `nodes`)."""
    chain: list[int] = field(default_factory=list)  # top-1 drafts, depth 1..k
    siblings: list[list[int]] = field(default_factory=list)  # per depth: extra candidate tokens (leaves)
    draft_probs: list[torch.Tensor] = field(default_factory=list)  # per depth: q (sampling only)
    source: str = "skip"  # who drafted the chain: "skip" (the skipping model), "lookup" (lookup.py) or "ar" (nobody)
    stop: str = ""  # why the chain ends where it does, in words (for the lab's token stepper)

    @property
    def size(self) -> int:
        return len(self.chain) + sum(map(len, self.siblings))

    def tokens(self) -> list[int]:
        """Every node's token in node order: the chain, then the siblings depth by depth (verify row
        1 + i reads node i)."""
        return self.chain + [t for sib in self.siblings for t in sib]

    def nodes(self) -> list[tuple[int, int]]:
        """(parent node index or -1 for the root, depth) per node, in node order."""
        out = [(i - 1, i + 1) for i in range(len(self.chain))]
        for depth, sib in enumerate(self.siblings, start=1):
            out += [(depth - 2, depth)] * len(sib)  # a sibling of chain node depth-1: same parent
        return out

    def sibling_index(self, depth: int, j: int) -> int:
        """Node index of the j-th sibling at `depth` (1-based depth)."""
        return len(self.chain) + sum(len(s) for s in self.siblings[:depth - 1]) + j


def tree_positions(tree: DraftTree, n: int, device=None) -> torch.Tensor:
    """Position ids [1, 1 + size]: the root at n, a node at n + depth."""
    return torch.tensor([[n] + [n + depth for _, depth in tree.nodes()]], device=device)


def tree_mask(tree: DraftTree, n: int, *, additive_dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    """[1, 1, 1 + size, n + 1 + size] mask: the prefix, the root, and each node's ancestors and itself.

    Boolean (True = attend) for SDPA-style attention, or additive (0 / dtype min) when
    `additive_dtype` is given, for eager attention."""
    nodes = tree.nodes()
    q = 1 + len(nodes)
    allowed = torch.zeros(q, n + q, dtype=torch.bool)
    allowed[:, :n + 1] = True  # everyone sees the prefix and the root
    for i, (parent, _) in enumerate(nodes):
        row = i + 1
        allowed[row, n + row] = True
        while parent >= 0:
            allowed[row, n + 1 + parent] = True
            parent = nodes[parent][0]
    allowed = allowed.to(device)[None, None]
    if additive_dtype is None:
        return allowed
    mask = torch.zeros(allowed.shape, dtype=additive_dtype, device=device)
    return mask.masked_fill(~allowed, torch.finfo(additive_dtype).min)


def accept_greedy(tree: DraftTree, logits: torch.Tensor) -> tuple[list[int], list[int]]:
    """(new tokens, accepted node indices). logits row 0 is the root, row 1 + i is node i."""
    target = logits.argmax(-1).tolist()
    path, row = [], 0
    for depth in range(1, len(tree.chain) + 1):
        want = target[row]
        if tree.chain[depth - 1] == want:
            path.append(depth - 1)
            row = depth
            continue
        if want in tree.siblings[depth - 1]:
            node = tree.sibling_index(depth, tree.siblings[depth - 1].index(want))
            path.append(node)
            row = node + 1
        break
    tokens = tree.tokens()
    return [tokens[i] for i in path] + [target[row]], path


def accept_sampled(tree: DraftTree, p: torch.Tensor, generator) -> tuple[list[int], list[int]]:
    """Recursive rejection sampling over each depth's candidates; p rows as in accept_greedy."""
    from .sampling import sample

    path, row = [], 0
    for depth in range(1, len(tree.chain) + 1):
        target, q = p[row].clone(), tree.draft_probs[depth - 1].clone()
        candidates = [(depth - 1, tree.chain[depth - 1])] + [
            (tree.sibling_index(depth, j), t) for j, t in enumerate(tree.siblings[depth - 1])]
        accepted = None
        for node, token in candidates:
            u = torch.rand((), generator=generator, device=target.device)
            if u * q[token] < target[token]:
                accepted = node
                break
            target = torch.clamp(target - q, min=0.0)
            target = target / target.sum() if target.sum() > 0 else p[row]
            q[token] = 0.0
            q = q / q.sum() if q.sum() > 0 else q
        if accepted is None:
            return [tree.tokens()[i] for i in path] + [sample(target, generator)], path
        path.append(accepted)
        row = accepted + 1
        if accepted >= len(tree.chain):  # a sibling: it has no children in the tree
            break
    tokens = tree.tokens()
    return [tokens[i] for i in path] + [sample(p[row], generator)], path
