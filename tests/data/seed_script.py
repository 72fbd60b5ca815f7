"""The seed notes' cells as one script (python -m gradmagic tests/data/seed_script.py)."""
import sys

import torch

print("argv", sys.argv[1:])
x = torch.arange(4.0)
x.requires_grad_(True)
y = 2 * torch.dot(x, x)
y.backward()
print("grad", x.grad.tolist())
x.grad.zero_()
y = x.sum()
y.backward()
print("grad", x.grad.tolist())
