"""Builds a graph, then fails on line 9 (the CLI must exit with status 3)."""
import torch

w = torch.ones(3, requires_grad=True)
loss = (w * 2).sum()
loss.backward()


raise ValueError("the script failed here")
