"""Read weights: each part weighted by the share of it that its reader reads (an option).

Proximity (DESIGN.md §2) asks how much a part resembles the whole it builds, not whether
anything downstream reads it: a big write into a subspace nothing reads still gets a big weight.
With a :class:`Reading`, the walk weights the parts of every reached node by what its reader
reads, and renormalises:

    c'_k = c_k r_k / sum_k' c_k' r_k'        r_k = ||Q^T z_k||_2 / ||z_k||_2

where ``z_k`` is the part and ``Q`` an orthonormal basis of what the node's reader reads:

- the prediction at a target position reads the direction its metric moves along, through the
  final norm's frozen gain and centring: ``C(g * (W_U[:, t] - E_p[W_U]))``, the gradient of
  log p(t) (a write that shifts every logit alike changes nothing), or ``C(g * (W_U[:, t] -
  W_U[:, foil]))`` with a foil (before a final soft-cap; a masked-LM head's nonlinear
  transform reads everything);
- the source of an attention edge is read by each head carrying at least ``head_share`` of the
  edge, through that head's value path ``x -> C(x) * g @ W_V[h] @ W_O[h]`` (through the output
  map for post-norm blocks): ``Q`` spans its columns, and what it annihilates the head never sees;
- a residual edge passes its target's reader down (the skip connection is the identity); an MLP
  reads everything (it is not linear);
- a node with several readers reads the span of theirs, or everything if one reads everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from jaxtyping import Float

from lmtt.flow import decompose as D
from lmtt.flow.contributions import AttentionContributions, MlpContributions
from lmtt.models.trace import Trace

Reader = frozenset | None  # atoms ("final", pos) / ("head", layer, h); None reads everything
RANK_TOL = 1e-5  # singular values below this share of the largest span nothing


@dataclass(frozen=True)
class Reading:
    """The read-weight option of the routes: ``token`` (default: each target position's top
    token) and an optional ``foil`` name the prediction's direction (with ``logprob`` False and
    no foil: the token's logit alone); heads carrying at least ``head_share`` of a kept
    attention edge read its source."""

    token: int | None = None
    foil: int | None = None
    head_share: float = 0.1
    logprob: bool = True


def _spanning(singular: torch.Tensor) -> torch.Tensor:
    """The singular values (largest first) that span something: above RANK_TOL of the first."""
    floor = RANK_TOL * max(float(singular[0]), 1e-30)
    return singular > floor


def _orthonormal(columns: Float[torch.Tensor, "d n"]) -> Float[torch.Tensor, "d r"]:
    """An orthonormal basis of the span of ``columns``."""
    if columns.shape[1] == 0:
        return columns
    U, S, _ = torch.linalg.svd(columns.double(), full_matrices=False)
    return U[:, _spanning(S)].float()


def final_direction(trace: Trace, pos: int, reading: Reading) -> Float[torch.Tensor, " d"] | None:
    """What the prediction at ``pos`` reads of the last residual, or None (everything)."""
    w = trace.weights
    if w.lens_dense_W is not None or not w.has_lens:
        return None
    logits = trace.all_logits()[pos].float()
    token = int(logits.argmax()) if reading.token is None else reading.token
    if reading.foil is not None:
        other = w.W_U[:, reading.foil]
    elif reading.logprob:  # the gradient of log p(token): W_U[:, token] - E_p[W_U]
        other = w.W_U @ logits.softmax(-1)
    else:
        other = 0.0
    return D.centre(trace, w.ln_final_w * (w.W_U[:, token] - other))


def head_read_basis(trace: Trace, layer: int, head: int) -> Float[torch.Tensor, "d r"]:
    """Orthonormal basis of what head ``head`` of block ``layer`` reads through its values."""
    vm = trace.weights.value_map(layer)
    A = vm.W_V[head]  # [d, d_head]: x -> C(x) * g @ W_V, as the matrix C diag(g) W_V
    if vm.norm_w is not None:
        A = D.centre(trace, (vm.norm_w[:, None] * A).T).T
    Ua, Sa, Vha = torch.linalg.svd(A.double(), full_matrices=False)
    keep = _spanning(Sa)
    W_O = D.output_direction(trace, layer, "attn", trace.weights.W_O[layer, head]).double()
    K = (Sa[keep, None] * Vha[keep]) @ W_O  # [r, d]: M = Ua[:, keep] @ K
    return (Ua[:, keep] @ _orthonormal(K).double()).float()


@dataclass(frozen=True, eq=False)
class ReadWalk:
    """The readers of the nodes the walk has reached at one layer (block outputs)."""

    trace: Trace
    reading: Reading
    readers: dict  # position -> Reader of resid(layer, pos)
    _bases: dict = field(default_factory=dict, repr=False)  # Reader -> basis, shared per walk

    @classmethod
    def start(cls, trace: Trace, targets: list[int], reading: Reading) -> ReadWalk:
        bases, readers = {}, {}
        for t in targets:
            d = final_direction(trace, t, reading)
            readers[t] = None if d is None else frozenset({("final", t)})
            if d is not None:
                bases[("final", t)] = (d / d.norm().clamp_min(1e-30))[:, None]
        return cls(trace, reading, readers, bases)

    def basis(self, reader: frozenset) -> Float[torch.Tensor, "d r"]:
        if reader not in self._bases:
            for atom in reader:
                if atom not in self._bases:
                    self._bases[atom] = head_read_basis(self.trace, atom[1], atom[2])
            self._bases[reader] = _orthonormal(torch.cat([self._bases[a] for a in reader], 1))
        return self._bases[reader]

    def _shares(self, parts: torch.Tensor, readers: list) -> torch.Tensor:
        """r [P, *K] of parts [P, *K, d] (row p read by ``readers[p]``)."""
        r = torch.ones(parts.shape[:-1])
        for reader in set(readers) - {None}:
            rows = torch.tensor([i for i, x in enumerate(readers) if x == reader])
            z = parts[rows]
            read = (z @ self.basis(reader)).norm(dim=-1)
            r[rows] = read / z.norm(dim=-1).clamp_min(1e-30)
        return r

    def mlp(self, m: MlpContributions) -> MlpContributions:
        """MLP and residual shares of the reached outputs, weighted by their readers."""
        out = self.trace.resid_post(m.layer)[m.positions]
        res = D.mlp_residual(self.trace, m.layer)[m.positions]
        readers = [self.readers.get(p) for p in m.positions.tolist()]
        base = torch.stack([m.mlp, m.residual], 1)
        shares = self._shares(torch.stack([out - res, res], 1), readers)
        c = _renormalise(base * shares, base)
        return replace(m, mlp=c[:, 0], residual=c[:, 1])

    def attention(self, a: AttentionContributions, read_by_mlp=None) -> AttentionContributions:
        """Head, residual (and parallel MLP) shares of the attention targets at ``a.queries``,
        weighted by their readers; ``read_by_mlp[q]``: the target is read by its MLP."""
        q = a.queries.tolist()
        readers = [None if read_by_mlp is not None and read_by_mlp[k] else self.readers.get(p)
                   for k, p in enumerate(q)]  # fmt: skip
        u = D.value_outputs(self.trace, a.layer).transpose(0, 1)  # [T, H, d]
        heads = torch.ones(len(q), *u.shape[:2])
        seen = max(q) + 1 if self.trace.family.causal else len(u)  # sources any query sees
        for reader in set(readers) - {None}:
            rows = torch.tensor([i for i, x in enumerate(readers) if x == reader])
            heads[rows, :seen] = self._shares(u[None, :seen], [reader])[0]
        others = [D.attention_residual(self.trace, a.layer)[a.queries]]
        if a.mlp is not None:
            others.append(D.parallel_mlp_write(self.trace, a.layer)[a.queries])
        rest = self._shares(torch.stack(others, 1), readers)  # [Q, 1 or 2]
        base = torch.cat([a.heads.flatten(1), a.residual[:, None]]
                         + ([a.mlp[:, None]] if a.mlp is not None else []), 1)  # fmt: skip
        c = _renormalise(base * torch.cat([heads.flatten(1), rest], 1), base)
        T, H = a.heads.shape[1:]
        mlp = None if a.mlp is None else c[:, T * H + 1]
        return replace(a, heads=c[:, : T * H].reshape(-1, T, H), residual=c[:, T * H], mlp=mlp)

    def below(self, layer: int, new_edges) -> ReadWalk:
        """The readers of the outputs of block ``layer - 1`` that the edges kept at ``layer``
        (``new_edges``) reach."""
        found: dict = {}
        read_by_mlp = {e.source.pos for e in new_edges if e.target.kind == "mlp"}
        for e in new_edges:
            if e.source.kind not in ("resid", "embed") or e.source.layer == layer:
                continue  # not an edge from the layer below
            if e.kind == "attention" and e.heads is not None:
                reader = frozenset(("head", layer, h) for h in _reading_heads(e.heads,
                                   self.reading.head_share))  # fmt: skip
            elif e.kind == "residual":
                inside = e.target.kind == "attn_out" and e.target.pos in read_by_mlp
                reader = None if inside else self.readers.get(e.target.pos)
            else:
                reader = None  # an MLP, or an edge without per-head weights, reads everything
            _merge(found, e.source.pos, reader)
        return ReadWalk(self.trace, self.reading, found, self._bases)


def _reading_heads(heads: tuple[float, ...], share: float) -> list[int]:
    """The heads carrying at least ``share`` of an edge (at least its top head)."""
    total = sum(heads)
    chosen = [h for h, w in enumerate(heads) if w >= share * total]
    return chosen or [max(range(len(heads)), key=heads.__getitem__)]


def _merge(found: dict, pos: int, reader: Reader) -> None:
    if reader is None or found.get(pos, frozenset()) is None:
        found[pos] = None
    else:
        found[pos] = found.get(pos, frozenset()) | reader


def _renormalise(weighted: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """Rows of ``weighted`` summing to 1 (a row read nowhere keeps its ``base`` shares)."""
    total = weighted.sum(-1, keepdim=True)
    ok = total > 0
    return torch.where(ok, weighted / torch.where(ok, total, 1.0), base)
