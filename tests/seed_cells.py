"""The seed notes' code cells, verbatim, with their ``In [n]`` numbers (one list for the
tests and ``benchmarks/magic.py``; imported by name, as ``shell_helpers`` is).

Source: ``shared/seed/autograd-notes.md``, In [2] … In [13] (In [12] is prose).

>>> [n for n, _ in SEED_CELLS][:3], SEED_SOURCES[2]
([2, 3, 4], 'y = 2 * torch.dot(x,x)\\ny')
"""
from __future__ import annotations

SEED_CELLS: list[tuple[int, str]] = [
    (2, "import torch\nx = torch.arange(4.0)\nx"),
    (3, "x.requires_grad_(True) # 等价于 x = torch.arange(4.0,requires_grad_)\nx.grad # 默认是none"),
    (4, "y = 2 * torch.dot(x,x)\ny"),
    (5, "y.backward()\nx.grad  # 函数y的梯度"),
    (6, "x.grad == 4 * x"),
    (7, "x.grad.zero_()\ny = x.sum()\ny.backward()\nx.grad # 对四个分量分别求偏导数 所以是四个1"),
    (8, "A = torch.arange(24).reshape(2,3,4)\nA"),
    (9, "t = A.sum(axis = 0,keepdims = True)\nt"),
    (10, "A = torch.arange(24).reshape(3,8)\nB = torch.ones(3,8)\nA,B"),
    (11, "print(A*B)\nprint(torch.sum(A*B))"),
    (13, "x.grad.zero_()\ny = x*x\ny"),
]
#: the sources alone, in order
SEED_SOURCES: list[str] = [source for _, source in SEED_CELLS]
