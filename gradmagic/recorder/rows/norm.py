"""Mapping rows of the norm family (see rows/__init__.py): normalizations, embeddings,
attention. ``F.*`` spellings take the engine's functions as they are; the ``torch.*``
spellings (what ``F.*`` calls underneath, also public) order their arguments differently.

In training mode ``F.batch_norm`` updates ``running_mean``/``running_var`` in place, and
torch's kernel does not bump their ``_version``: the recorder cannot see the change, so the
engine makes the same update on their twins (``engine.functional.batch_norm``;
``tests/engine/test_engine_norm.py`` checks it against torch's), and a later eval-mode call
checks values computed from the engine's statistics. The recorder converts a call's
arguments after torch ran it, so batch_norm's arguments get their twins *before* torch runs
(``mapping._PRE_OPS``): a running statistic seen for the first time (made by a factory in the
recorded code, or materialized by ``nn.LazyBatchNorm*``) holds its value from before the update.
``F.instance_norm`` writes its running statistics with a
``copy_`` that does bump ``_version``: the recorder re-reads those, the engine leaves them.
Attention with ``dropout_p > 0`` (``F.scaled_dot_product_attention``, and
``F.multi_head_attention_forward`` in training) draws its mask inside the fused call: the
recorder saves torch's generator state first (``mapping._DRAWS_MASKS``) and the engine replays
the mask (``recorder/masks.py``). Channel dropout (``F.dropout1d/2d/3d``) is a row of
the core table, beside ``F.dropout``; ``F.alpha_dropout`` stays opaque: its masks are not replayed.
"""
from __future__ import annotations

from typing import Any

from gradmagic.engine import functional as EF

from ..adapters import call


def _positional(names: tuple[str, ...], args: tuple, kwargs: dict) -> dict:
    """torch's arguments by name (positional ones first, then keywords)."""
    got = dict(zip(names, args))
    got.update(kwargs)
    return got


def _instance_norm(input: Any, running_mean: Any = None, running_var: Any = None,
                   weight: Any = None, bias: Any = None, use_input_stats: bool = True,
                   momentum: Any = 0.1, eps: float = 1e-5) -> Any:
    if use_input_stats:  # torch's copy_ into the running statistics bumps their _version:
        running_mean = running_var = None  # the recorder re-reads them, no engine update
    return EF.instance_norm(input, running_mean, running_var, weight, bias, use_input_stats,
                            momentum, eps)


def _torch_batch_norm(args: Any, kwargs: dict) -> Any:
    """``torch.batch_norm(input, weight, bias, running_mean, running_var, training,
    momentum, eps, cudnn_enabled)``."""
    a = _positional(("input", "weight", "bias", "running_mean", "running_var", "training",
                     "momentum", "eps", "cudnn_enabled"), args, kwargs)
    return EF.batch_norm(a["input"], a.get("running_mean"), a.get("running_var"), a.get("weight"),
                       a.get("bias"), a.get("training", False), a.get("momentum", 0.1),
                       a.get("eps", 1e-5))


def _torch_instance_norm(args: Any, kwargs: dict) -> Any:
    a = _positional(("input", "weight", "bias", "running_mean", "running_var", "use_input_stats",
                     "momentum", "eps", "cudnn_enabled"), args, kwargs)
    return _instance_norm(a["input"], a.get("running_mean"), a.get("running_var"),
                          a.get("weight"), a.get("bias"), a.get("use_input_stats", True),
                          a.get("momentum", 0.1), a.get("eps", 1e-5))


def _torch_layer_norm(args: Any, kwargs: dict) -> Any:
    a = _positional(("input", "normalized_shape", "weight", "bias", "eps", "cudnn_enable"),
                    args, kwargs)
    return EF.layer_norm(a["input"], a["normalized_shape"], a.get("weight"), a.get("bias"),
                         a.get("eps", 1e-5))


def _torch_group_norm(args: Any, kwargs: dict) -> Any:
    a = _positional(("input", "num_groups", "weight", "bias", "eps", "cudnn_enabled"), args, kwargs)
    return EF.group_norm(a["input"], a["num_groups"], a.get("weight"), a.get("bias"),
                         a.get("eps", 1e-5))


def _torch_embedding(args: Any, kwargs: dict) -> Any:
    """``torch.embedding(weight, indices, padding_idx=-1, scale_grad_by_freq, sparse)``:
    the weight first, and a negative ``padding_idx`` means none."""
    a = _positional(("weight", "indices", "padding_idx", "scale_grad_by_freq", "sparse"),
                    args, kwargs)
    pad = a.get("padding_idx", -1)
    return EF.embedding(a["indices"], a["weight"], None if pad is None or pad < 0 else pad,
                        scale_grad_by_freq=a.get("scale_grad_by_freq", False),
                        sparse=a.get("sparse", False))


def _mha(args: Any, kwargs: dict) -> Any:
    return EF.multi_head_attention_forward(*args, **kwargs)


ROWS: list[tuple[str, Any, Any, tuple[str, ...]]] = [
    ("op", "batch_norm", call(EF.batch_norm), ("F.batch_norm",)),
    ("op", "batch_norm", _torch_batch_norm, ("torch.batch_norm",)),
    ("op", "reshape", call(_instance_norm), ("F.instance_norm",)),
    ("op", "reshape", _torch_instance_norm, ("torch.instance_norm",)),
    ("op", "layer_norm", call(EF.layer_norm), ("F.layer_norm",)),
    ("op", "layer_norm", _torch_layer_norm, ("torch.layer_norm",)),
    ("op", "group_norm", call(EF.group_norm), ("F.group_norm",)),
    ("op", "group_norm", _torch_group_norm, ("torch.group_norm",)),
    ("op", "div", call(EF.local_response_norm), ("F.local_response_norm",)),
    ("op", "embedding", call(EF.embedding), ("F.embedding",)),
    ("op", "embedding", _torch_embedding, ("torch.embedding",)),
    ("op", "embedding_bag", call(EF.embedding_bag), ("F.embedding_bag",)),
    ("op", "matmul", call(EF.scaled_dot_product_attention), ("F.scaled_dot_product_attention",)),
    ("op", "reshape", _mha, ("F.multi_head_attention_forward",)),
]
