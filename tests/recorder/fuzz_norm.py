"""Fuzzer families of the norm ops (registered into fuzz_programs.FAMILIES on import):
normalizations, embeddings, attention."""
from __future__ import annotations

import torch

from fuzz_programs import Builder, Stmt, _choose, _op, aliases, family, spell  # noqa: F401

_F32 = (torch.float32,)


def _spread(t: torch.Tensor, groups: tuple) -> bool:
    """Every group of ``t`` (``groups``: the shape it is viewed as, normalized over its last
    axis) has a clear variance: on constant groups (``torch.full``) a normalization's value
    and gradients are float32 rounding noise of torch's kernels, which no other arithmetic
    reproduces."""
    with torch.no_grad():
        g = t.double().reshape(groups)
        # (two values per group normalize to ±1 whatever they are: the gradient is noise too)
        return t.numel() > 0 and g.shape[-1] > 2 and bool(g.var(-1, unbiased=False).min() > 1e-2)


def _channels_last(t: torch.Tensor) -> tuple:
    """(channels, everything else) of an (N, C, ...) tensor, for per-channel statistics."""
    return (t.shape[1], -1)


def _vector(b: Builder, n: int) -> str:
    """A pool tensor of shape (n,) (gradients flow to it), or a fresh one, or None."""
    pick = b.pick(lambda t: t.dtype in _F32 and tuple(t.shape) == (n,))
    if pick is not None and b.bool():
        return pick
    return b.choice(["None", f"torch.randn({n})", f"torch.rand({n}) + 0.5"])


def _affine(b: Builder, n: int) -> tuple:
    """(weight, bias). A bias comes with a weight: without one torch's double backward
    gives a gradient that requires grad but leads nowhere (the engine mirrors that with a
    leaf of its own, which the recorder reports as unchecked)."""
    w = _vector(b, n)
    return w, ("None" if w == "None" else _vector(b, n))


def _input(b: Builder, ok, shape: tuple) -> str:
    """A pool tensor that ``ok`` accepts, else a fresh leaf of ``shape``."""
    a = b.pick(lambda t: t.dtype in _F32 and ok(t))
    if a is None or b.int(0, 3) == 0:
        a = b.name("x")
        b.add(Stmt(f"{a} = torch.randn({shape}, requires_grad=True)", "setup", a))
    return a


def _norm_op(b: Builder, expr: str, a: str) -> bool:
    """A normalization's result times a fixed ramp: Σ out² of a normalization alone is
    nearly constant (its gradient is float32 noise, torch's and ours different)."""
    t = b.env[a]
    ramp = f"torch.linspace(0.5, 1.5, {t.numel()}).reshape({tuple(t.shape)})"
    return _op(b, f"{expr} * {ramp}", (a,))


def _per_channel(t: torch.Tensor) -> bool:
    return t.dim() >= 2 and t.shape[1] > 0 and _spread(t.movedim(1, 0), _channels_last(t))


def _per_instance(t: torch.Tensor) -> bool:
    return t.dim() >= 3 and t.shape[0] * t.shape[1] > 0 and _spread(t, (t.shape[0] * t.shape[1], -1))


@family(*aliases("torch.nn.functional.batch_norm"), *aliases("torch.batch_norm"),
        *aliases("torch.nn.functional.instance_norm"), *aliases("torch.instance_norm"), weight=2)
def batch_norms(b: Builder) -> bool:
    form = b.choice(["F.batch_norm", "torch.batch_norm", "F.instance_norm", "torch.instance_norm"])
    if form.endswith("batch_norm"):
        a = _input(b, _per_channel, (b.int(3, 5), b.int(1, 3)))
    else:
        a = _input(b, _per_instance, (b.int(1, 2), b.int(1, 3), b.int(3, 5)))
    c = b.env[a].shape[1]
    w, bias = _affine(b, c)
    stats = f"torch.zeros({c}), torch.ones({c})"
    training = b.bool()
    if not training and not form.endswith("instance_norm"):  # (eval: ∂/∂x depends on w only;
        w = f"torch.rand({c}, requires_grad=True)"           # see _affine for the dead end)
    momentum = b.choice(["", ", momentum=0.3"])
    if form == "F.batch_norm":
        expr = f"F.batch_norm({a}, {stats}, {w}, {bias}, training={training}{momentum})"
    elif form == "torch.batch_norm":
        expr = f"torch.batch_norm({a}, {w}, {bias}, {stats}, {training}, 0.1, 1e-05, False)"
    elif form == "F.instance_norm":
        run = b.choice(["", f"{stats}, "])
        expr = f"F.instance_norm({a}, {run}weight={w}, bias={bias}{momentum})"
    else:
        expr = f"torch.instance_norm({a}, {w}, {bias}, None, None, True, 0.1, 1e-05, False)"
    return _norm_op(b, expr, a)


@family(*aliases("torch.nn.functional.layer_norm"), *aliases("torch.layer_norm"),
        *aliases("torch.nn.functional.group_norm"), *aliases("torch.group_norm"),
        *aliases("torch.nn.functional.local_response_norm"), weight=2)
def other_norms(b: Builder) -> bool:
    kind = b.choice(["layer", "group", "lrn"])
    if kind == "layer":
        k = b.int(1, 2)
        a = _input(b, lambda t: t.dim() >= k and t.numel() > 0 and _spread(
            t, (-1, int(torch.tensor(t.shape[t.dim() - k:]).prod()))), (b.int(1, 3), 4))
        t = b.env[a]
        k = min(k, t.dim())
        shape = tuple(t.shape[t.dim() - k:])
        n = shape[0] if len(shape) == 1 else None
        w, bias = _affine(b, n) if n is not None else (b.choice(["None", f"torch.randn({shape})"]), "None")
        fn = b.choice(["F.layer_norm", "torch.layer_norm"])
        return _norm_op(b, f"{fn}({a}, {shape}, {w}, {bias}, 1e-05)", a)
    if kind == "lrn":
        a = _input(b, lambda t: t.dim() >= 3 and t.numel() > 0, (2, b.int(1, 4), 3))
        return _op(b, f"F.local_response_norm({a}, {b.int(1, 4)}, alpha={b.float(0.1, 1):.2f}, "
                      f"k={b.float(1, 2):.2f})", (a,))
    a = _input(b, lambda t: t.dim() >= 2 and t.shape[0] > 0 and _spread(t, (t.shape[0], -1)),
               (2, 2, 3))
    c = b.env[a].shape[1]
    fn = b.choice(["F.group_norm", "torch.group_norm"])  # (one group: the pick checked it)
    w, bias = _affine(b, c)
    return _norm_op(b, f"{fn}({a}, 1, {w}, {bias}, 1e-05)", a)


@family(*aliases("torch.nn.functional.embedding"), *aliases("torch.embedding"),
        *aliases("torch.nn.functional.embedding_bag"), weight=2)
def embeddings(b: Builder) -> bool:
    w = b.pick(lambda t: t.dtype in _F32 and t.dim() == 2 and t.shape[0] > 0)
    if w is None:
        return False
    n = b.env[w].shape[0]
    idx = f"torch.randint(0, {n}, {(b.int(1, 3), b.int(1, 3))})"
    kind = b.choice(["F.embedding", "torch.embedding", "bag"])
    if kind == "F.embedding":
        pad = b.choice(["", f", padding_idx={b.int(-n, n - 1)}", ", scale_grad_by_freq=True"])
        return _op(b, f"F.embedding({idx}, {w}{pad})", (w,))
    if kind == "torch.embedding":
        return _op(b, f"torch.embedding({w}, {idx}, {b.int(-1, n - 1)})", (w,))
    mode = b.choice(["sum", "mean", "max"])
    if b.bool():
        return _op(b, f"F.embedding_bag({idx}, {w}, mode='{mode}')", (w,))
    k = b.int(1, 5)
    offsets = sorted(b.int(0, k) for _ in range(b.int(1, 3)))
    offsets[0] = 0
    return _op(b, f"F.embedding_bag(torch.randint(0, {n}, ({k},)), {w}, torch.tensor({offsets}), "
                  f"mode='{mode}')", (w,))


@family(*aliases("torch.nn.functional.scaled_dot_product_attention"),
        *aliases("torch.nn.functional.multi_head_attention_forward"), weight=2)
def attention(b: Builder) -> bool:
    q = b.pick(lambda t: t.dtype in _F32 and t.dim() in (2, 3) and t.numel() > 0)
    if q is None:
        return False
    shape = tuple(b.env[q].shape)
    e = shape[-1]
    if b.bool():  # scaled_dot_product_attention, self-attention with options
        opts = b.choice(["", ", is_causal=True", ", scale=0.5", ", dropout_p=0.4",
                         ", dropout_p=0.25, is_causal=True",
                         f", attn_mask=(torch.rand({shape[-2]}, {shape[-2]}) > 0.3) | torch.eye({shape[-2]}, dtype=torch.bool)",
                         f", attn_mask=torch.randn({shape[-2]}, {shape[-2]})"])
        return _op(b, f"F.scaled_dot_product_attention({q}, {q}, {q}{opts})", (q,))
    heads = b.choice([h for h in (1, 2) if e % h == 0])
    dropout_p = b.choice(["0.0", "0.0", "0.3"])  # (torch's attention dropout mask, replayed)
    weights = (f"{e}, {heads}, torch.randn({3 * e}, {e}), torch.randn({3 * e}), None, None, False, "
               f"{dropout_p}, torch.randn({e}, {e}), torch.randn({e})")
    need = b.choice(["True", "False"])
    avg = b.choice(["", ", average_attn_weights=False"])
    return _op(b, f"F.multi_head_attention_forward({q}, {q}, {q}, {weights}, training=True, "
                  f"need_weights={need}{avg})[0]", (q,))
