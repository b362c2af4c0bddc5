"""K copies of one BERT classifier as one model: every weight stacked along a leading member
axis, every linear layer one batched matmul, every op one call for all K members.

The forward pass is ``BertForSequenceClassification``'s (embeddings, post-LayerNorm encoder,
tanh pooler, classifier; cross-entropy, or mean squared error for one label) written on
stacked weights, so K members cost one launch per op instead of K. Members of one seed see the
same batch (``[B, L]``) and the same dropout masks (``StackedBert._drop``); a unit of several
seeds runs each seed's members (adjacent in the stack) on their seed's own batch, with that
seed's own dropout generator (``Group``, ``StackedBert.group_losses``). Each member has its own
weights. Chosen by measurement over ``torch.func.vmap`` of ``functional_call`` on the
transformers model, which was slower on CPU than both these stacked matmuls and K separate
models (``bench/fused.py --choice`` records all three).

Only BERT-architecture models stack (the miniatures, all-MiniLM-L6-v2, any ``model_type:
bert``); ``stackable`` says whether a model does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.nn import functional
from transformers.activations import ACT2FN

PREFIX = "bert."
WORDS = PREFIX + "embeddings.word_embeddings.weight"


def stackable(model) -> bool:
    """Whether ``model`` is a BERT sequence classifier this module can stack."""
    cfg = getattr(model, "config", None)
    return (type(model).__name__ == "BertForSequenceClassification" and getattr(cfg, "model_type", "") == "bert"
            and getattr(cfg, "position_embedding_type", "absolute") == "absolute"
            and not getattr(cfg, "is_decoder", False))


class Vocabulary:
    """The rows of the word embeddings a unit trains: the token ids its training set uses (and the
    padding id 0). A row no training batch looks up gets a zero gradient at every step, so its
    AdamW moments stay zero and AdamW only decays it, ``w <- w * (1 - lr * wd)`` (exact in closed
    form). Such rows are not stacked: each member keeps one decay factor for all of them, and its
    full matrix is rebuilt from the initial one when it is evaluated. On SST-2 (4,000 rows) this
    stacks 6,700 of BERT's 30,522 rows, so the gradient, clipping and AdamW passes over the
    embeddings, most of a small model's parameters, shrink in proportion."""

    def __init__(self, train_ids: np.ndarray, weight: torch.Tensor, k: int,
                 others: list[torch.Tensor] = (), group: list[int] | None = None):
        rows = np.union1d(np.unique(train_ids), [0])           # sorted, so the padding id stays 0
        self.rows = torch.from_numpy(rows).to(weight.device)
        self.base = weight.detach().clone()                    # [V, H]: every member's start (one seed)
        # several seeds: each seed's start (``weight`` the first's, ``others`` the rest's), each member's seed
        self.bases = [self.base, *(w.detach().clone() for w in others)]
        self.group = list(group) if group is not None else [0] * k
        self.scale = torch.ones(k, dtype=torch.float64, device=weight.device)   # each member's decay of the rest
        self.lookup = np.zeros(weight.shape[0], dtype=np.int32)
        self.lookup[rows] = np.arange(len(rows), dtype=np.int32)

    def compact(self, enc):
        """``enc`` (an ``Encoded`` split of the training set) with ids renumbered into the rows."""
        return replace(enc, input_ids=self.lookup[enc.input_ids])

    def stacked(self, k: int) -> torch.Tensor:
        if len(self.bases) > 1:
            return torch.stack([self.bases[g].index_select(0, self.rows) for g in self.group])
        return self.base.index_select(0, self.rows).unsqueeze(0).repeat(k, 1, 1).contiguous()

    def base_of(self, k: int) -> torch.Tensor:
        """Member ``k``'s initial matrix, [V, H] (its seed's)."""
        return self.bases[self.group[k]]

    def decay(self, lrs: torch.Tensor, wd: float) -> None:
        """After an AdamW step with these learning rates ([K], the schedule's factor applied; a
        device tensor, so the step lifts nothing to the device)."""
        if wd:
            lrs = lrs if isinstance(lrs, torch.Tensor) else torch.tensor(lrs, dtype=torch.float64)
            self.scale.mul_(1 - lrs.to(self.scale) * wd)

    def keep(self, rows: list[int]) -> None:
        self.scale = self.scale[torch.tensor(rows, dtype=torch.long, device=self.scale.device)]
        self.group = [self.group[r] for r in rows]

    @torch.no_grad()
    def write(self, out: torch.Tensor, trained: torch.Tensor, k: int) -> torch.Tensor:
        """Member ``k``'s whole matrix into ``out`` ([V, H]) from its trained rows ``trained``
        ([A, H]): the initial rows decayed by its factor, the trained ones in place."""
        torch.mul(self.base_of(k), float(self.scale[k]), out=out)
        return out.index_copy_(0, self.rows, trained.detach().to(out.dtype))


class WordGrads:
    """The stacked word embeddings' gradient, written only at the rows the step's batches look
    up. An embedding's own backward fills a zero gradient the size of the whole stacked matrix
    at every step and then adds a few hundred rows into it; here the lookup reads the detached
    weights into a leaf that the backward pass fills (``[K, B*L, H]``), and ``grad`` adds that
    into one kept buffer after zeroing the rows the previous step wrote: the same sums, no
    pass over the whole matrix."""

    def __init__(self):
        self.buf: torch.Tensor | None = None
        self.touched: torch.Tensor | None = None
        self.parts: list[tuple[torch.Tensor, torch.Tensor]] = []

    def lookup(self, weight: torch.Tensor, flat: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """``functional.embedding(flat, weight.reshape(-1, H))``, its gradient kept for ``grad``
        (``weight``: the stacked rows from ``offset`` on, flat, a group of members' own)."""
        leaf = functional.embedding(flat, weight.detach().reshape(-1, weight.shape[-1]))
        if torch.is_grad_enabled():
            leaf.requires_grad_()
            self.parts.append((flat.reshape(-1) + offset if offset else flat.reshape(-1), leaf))
        return leaf

    @torch.no_grad()
    def grad(self, weight: torch.Tensor) -> torch.Tensor:
        """The gradient of ``weight`` from the lookups since the last call (their backward done)."""
        h = weight.shape[-1]
        if self.buf is None or self.buf.shape != weight.shape:      # first step, or members left
            self.buf, self.touched = torch.zeros_like(weight), None
        rows = self.buf.view(-1, h)
        if self.touched is not None:
            rows.index_fill_(0, self.touched, 0.0)
        parts = [(f, leaf.grad) for f, leaf in self.parts if leaf.grad is not None]   # backward done
        self.parts, self.touched = [], None
        if parts:   # one part a micro-batch
            self.touched = parts[0][0] if len(parts) == 1 else torch.cat([f for f, _ in parts])
            grads = [g.reshape(-1, h).to(rows.dtype) for _, g in parts]
            rows.index_add_(0, self.touched, grads[0] if len(grads) == 1 else torch.cat(grads))
        return self.buf


@dataclass
class Group:
    """The members at rows ``lo`` to ``hi - 1`` of the stack (those of one seed) in one
    micro-batch: their seed's own ``inputs`` and ``labels`` (None: their batch has no such
    micro-batch), ``share`` of their batch, and their seed's dropout ``generator``."""
    lo: int
    hi: int
    generator: torch.Generator | None
    inputs: dict | None
    labels: torch.Tensor | None
    share: float


def linear_weights(model) -> set[str]:
    """The names of the model's ``nn.Linear`` weights: stacked transposed, ``[K, in, out]``, so
    each batched matmul reads them as they lie (the ``[out, in]`` layout made every backward
    pass copy each weight's gradient into place)."""
    return {f"{name}.weight" for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}


def stack_parameters(model, k: int, words: Vocabulary | None = None, models: list | None = None,
                     group: list[int] | None = None) -> dict[str, torch.Tensor]:
    """The model's parameters, each repeated ``k`` times along a new leading axis (leaf
    tensors that require gradients), by the transformers parameter name; linear weights
    transposed (``linear_weights``), the word embeddings only at ``words.rows`` when given.
    Several seeds: member ``i`` takes ``models[group[i]]``'s parameters (``models[0]`` is ``model``)."""
    lin = linear_weights(model)
    own = [dict(m.named_parameters()) for m in models] if models and len(models) > 1 else None

    def stack(name, p):
        if words is not None and name == WORDS:
            return words.stacked(k).requires_grad_(p.requires_grad)
        if own is not None:
            ts = [own[g][name].detach() for g in group]
            return torch.stack([t.t() if name in lin else t for t in ts]).contiguous().requires_grad_(p.requires_grad)
        t = p.detach().t() if name in lin else p.detach()
        return t.unsqueeze(0).repeat(k, *([1] * p.ndim)).contiguous().requires_grad_(p.requires_grad)
    return {name: stack(name, p) for name, p in model.named_parameters()}


def _own_layout(name: str, t: torch.Tensor, k: int, out: torch.Tensor, lin: set[str],
                words: Vocabulary | None) -> torch.Tensor:
    """Member ``k``'s tensor ``name`` (stacked ``t``) in the model's own layout, into ``out``."""
    if words is not None and name == WORDS:
        return words.write(out, t[k], k)
    return out.copy_(t[k].t() if name in lin else t[k])


@torch.no_grad()
def member(model, params: dict[str, torch.Tensor], k: int, words: Vocabulary | None = None) -> dict[str, torch.Tensor]:
    """Member ``k``'s parameters in the model's own layout, by name (new tensors)."""
    lin, own = linear_weights(model), dict(model.named_parameters())
    return {name: _own_layout(name, t, k, torch.empty_like(own[name]), lin, words) for name, t in params.items()}


@torch.no_grad()
def load_member(model, params: dict[str, torch.Tensor], k: int, words: Vocabulary | None = None) -> None:
    """Copy member ``k``'s weights into ``model`` (same architecture), e.g. to evaluate it."""
    lin = linear_weights(model)
    for name, own in model.named_parameters():
        _own_layout(name, params[name], k, own.data, lin, words)


def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x [K, N, I], w [K, I, O] (transposed), b [K, O] -> [K, N, O]."""
    return torch.baddbmm(b.unsqueeze(1), x, w)


def _layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.addcmul(b.unsqueeze(1), functional.layer_norm(x, x.shape[-1:], eps=eps), w.unsqueeze(1))


class StackedBert:
    """The forward pass of K stacked ``BertForSequenceClassification`` members."""

    def __init__(self, config, num_labels: int):
        self.c, self.num_labels = config, num_labels
        self.act = ACT2FN[config.hidden_act]
        self.heads = config.num_attention_heads
        cls_drop = getattr(config, "classifier_dropout", None)
        self.cls_dropout = config.hidden_dropout_prob if cls_drop is None else cls_drop
        self.training = True
        self.word_grads: WordGrads | None = None   # set: the word embeddings' gradient goes there

    def _drop(self, x: torch.Tensor, p: float, shape: tuple[int, ...], generator=None) -> torch.Tensor:
        """Dropout with one mask for all members, drawn as the solo trial draws it: ``functional.dropout``
        of a tensor of the solo trial's ``shape`` (``x`` is ``[K, *shape]`` in another view); from
        ``generator`` when given (a group of one seed among several: its own stream), else from
        the default generator.

        The trials of a unit share their seed, so their solo runs draw the same masks at every
        step (the random stream does not depend on the learning rate); so do the members here,
        from one draw a quarter the size of K separate ones. On CPU the draws are the solo
        trial's own (same calls, same shapes, same order), so with dropout on a member still
        tracks its solo trial to float rounding."""
        if not (self.training and p > 0):
            return x
        # float32, so that bf16 activations are scaled by 1/(1-p) with one rounding, as functional.dropout does
        if generator is not None:   # on CPU functional.dropout's draw; on CUDA the generator's Bernoulli draw
            mask = torch.empty(shape, dtype=torch.float32, device=x.device).bernoulli_(1 - p, generator=generator)
            mask = mask.div_(1 - p)
        elif x.device.type == "cpu":   # functional.dropout's own steps on CPU (the same draw), without its ones
            mask = torch.empty(shape, dtype=torch.float32).bernoulli_(1 - p).div_(1 - p)
        else:                        # CUDA's fused dropout draws differently: let it draw
            mask = functional.dropout(torch.ones(shape, dtype=torch.float32, device=x.device), p, True)
        return (x.view(-1, *shape) * mask).to(x.dtype).view(x.shape)

    def _embed(self, P: dict, input_ids, token_type_ids, group: Group | None = None) -> torch.Tensor:
        k, (b, l) = P[PREFIX + "embeddings.word_embeddings.weight"].shape[0], input_ids.shape
        out = []
        for name, ids in (("word", input_ids), ("token_type", token_type_ids),
                          ("position", torch.arange(l, device=input_ids.device).expand(b, l))):
            w = P[f"{PREFIX}embeddings.{name}_embeddings.weight"]                 # [K, V, H]
            flat = ids.reshape(1, -1) + (torch.arange(k, device=ids.device) * w.shape[1]).unsqueeze(1)
            if name == "word" and self.word_grads is not None:
                out.append(self.word_grads.lookup(w, flat, group.lo * w.shape[1] if group is not None else 0))
            else:
                out.append(functional.embedding(flat, w.reshape(-1, w.shape[-1])))       # [K, B*L, H]
        x = out[0] + out[1] + out[2]
        x = _layer_norm(x, P[PREFIX + "embeddings.LayerNorm.weight"], P[PREFIX + "embeddings.LayerNorm.bias"],
                        self.c.layer_norm_eps)
        return self._drop(x, self.c.hidden_dropout_prob, (b, l, x.shape[-1]), _gen(group))

    def _attention(self, P: dict, pre: str, x: torch.Tensor, mask: torch.Tensor, b: int, l: int,
                   gen=None) -> torch.Tensor:
        k, n, h = x.shape
        hd = h // self.heads

        def heads(name):   # [K, B*L, H] -> [K*B, heads, L, hd]
            y = _linear(x, P[f"{pre}attention.self.{name}.weight"], P[f"{pre}attention.self.{name}.bias"])
            return y.view(k * b, l, self.heads, hd).transpose(1, 2)

        q, key, v = heads("query"), heads("key"), heads("value")
        scores = torch.matmul(q, key.transpose(-1, -2)) / math.sqrt(hd)
        scores = (scores.view(k, b, self.heads, l, l) + mask).view(k * b, self.heads, l, l)   # mask [B, 1, 1, L]
        probs = self._drop(torch.softmax(scores, dim=-1), self.c.attention_probs_dropout_prob, (b, self.heads, l, l), gen)
        ctx = torch.matmul(probs, v).transpose(1, 2).reshape(k, n, h)
        y = self._drop(_linear(ctx, P[f"{pre}attention.output.dense.weight"], P[f"{pre}attention.output.dense.bias"]),
                       self.c.hidden_dropout_prob, (b, l, h), gen)
        return _layer_norm(y + x, P[f"{pre}attention.output.LayerNorm.weight"], P[f"{pre}attention.output.LayerNorm.bias"],
                           self.c.layer_norm_eps)

    def logits(self, P: dict, input_ids, attention_mask, token_type_ids=None, group: Group | None = None) -> torch.Tensor:
        """[K, B, num_labels] for one batch ``[B, L]`` shared by all members (``P`` a group's rows
        of the stack when ``group`` is given)."""
        b, l = input_ids.shape
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x, gen = self._embed(P, input_ids, token_type_ids, group), _gen(group)
        k = x.shape[0]
        neg = torch.finfo(x.dtype).min
        mask = ((1.0 - attention_mask.to(x.dtype)) * neg).view(b, 1, 1, l)
        for i in range(self.c.num_hidden_layers):
            pre = f"{PREFIX}encoder.layer.{i}."
            a = self._attention(P, pre, x, mask, b, l, gen)
            y = self.act(_linear(a, P[pre + "intermediate.dense.weight"], P[pre + "intermediate.dense.bias"]))
            y = self._drop(_linear(y, P[pre + "output.dense.weight"], P[pre + "output.dense.bias"]), self.c.hidden_dropout_prob,
                           (b, l, x.shape[-1]), gen)
            x = _layer_norm(y + a, P[pre + "output.LayerNorm.weight"], P[pre + "output.LayerNorm.bias"], self.c.layer_norm_eps)
        cls = x.view(k, b, l, -1)[:, :, 0]                                             # [K, B, H]
        pooled = torch.tanh(_linear(cls, P[PREFIX + "pooler.dense.weight"], P[PREFIX + "pooler.dense.bias"]))
        return _linear(self._drop(pooled, self.cls_dropout, (b, pooled.shape[-1]), gen), P["classifier.weight"],
                       P["classifier.bias"])

    def group_losses(self, P: dict, groups: list[Group]) -> torch.Tensor:
        """Several seeds: each group's members on their own micro-batch, [K], each member's mean
        loss times its group's ``share`` (0 where a group has no such micro-batch). ``groups``
        cover the stack's rows in order; each stacked tensor is split into the groups' rows (one
        view each; the backward pass concatenates their gradients)."""
        sizes = [g.hi - g.lo for g in groups]
        parts = {name: t.split(sizes) for name, t in P.items()}
        out = []
        for i, g in enumerate(groups):
            if g.inputs is None:
                out.append(torch.zeros(sizes[i], dtype=torch.float32, device=P[WORDS].device))
            else:
                out.append(self.losses({n: t[i] for n, t in parts.items()}, g.inputs, g.labels, g) * g.share)
        return torch.cat(out)

    def losses(self, P: dict, batch: dict, labels: torch.Tensor, group: Group | None = None) -> torch.Tensor:
        """Each member's mean loss on the batch, [K] (the transformers model's loss per member).
        A batch of several seeds' groups (``{"groups": [Group, ...]}``): ``group_losses``."""
        if "groups" in batch:
            return self.group_losses(P, batch["groups"])
        logits = self.logits(P, batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"), group)
        if self.num_labels == 1:
            return ((logits[..., 0].float() - labels.float().unsqueeze(0)) ** 2).mean(dim=1)
        k, b, c = logits.shape
        ce = functional.cross_entropy(logits.float().reshape(k * b, c), labels.repeat(k), reduction="none")
        return ce.view(k, b).mean(dim=1)


def _gen(group: Group | None):
    return group.generator if group is not None else None
