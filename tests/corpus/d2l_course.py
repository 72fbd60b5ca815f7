"""A corpus of notebook cells ported from the PyTorch tab of *Dive into Deep Learning*
(d2l-ai/d2l-en, ``chapter_*/*.md``, ```` ```{.python .input} ```` blocks marked
``%%tab pytorch`` / ``%%tab all``), for ``tests/test_d2l_course.py``.

Each cell is one self-contained program, written as a notebook user would paste it:
the book's code kept as it is (names, shapes, hyper-parameters), with three changes only:

* no ``import d2l``: ``d2l.tensor/zeros/matmul/...`` are spelled as the ``torch`` calls they
  alias; ``d2l.Module``/``d2l.Classifier`` become ``nn.Module`` plus the two methods the
  cell uses (``Classifier.loss`` is ``F.cross_entropy`` on flattened logits); the
  ``d2l.Trainer`` fit loop is ``fit()`` below (``d2l/torch.py``, ``Trainer.fit_epoch`` and
  ``Trainer.clip_gradients``, which run ``loss.backward()`` and the optimizer step under
  ``torch.no_grad()`` exactly as the book's trainer does);
* data downloads become synthetic tensors of the book's shapes (Fashion-MNIST batches
  ``torch.randn(8, 1, 28, 28)`` with random labels; *The Time Machine* as random token
  ids over its vocabulary of 28; the airfoil data of chapter 12 as standardised noise);
* sizes are cut down (batch <= 8, one or two training steps) so every cell runs fast.

The contract with the test: a cell leaves ``outputs`` (a list of tensors: what the
cell computed) and ``params`` (a list of tensors whose ``.grad`` the test compares) in
the namespace. The test seeds ``torch.manual_seed`` before each run.

>>> len(CELLS) == len({c.name for c in CELLS}) and all(c.citation for c in CELLS)
True
"""
from __future__ import annotations

from typing import NamedTuple


class Cell(NamedTuple):
    name: str
    citation: str  # chapter file and section of d2l-ai/d2l-en
    source: str


IMPORTS = """\
import math
import torch
from torch import nn
from torch.nn import functional as F
"""

# d2l/torch.py: Classifier.loss, Trainer.fit_epoch, Trainer.clip_gradients (the d2l library
# classes the chapters train with), reduced to the lines they amount to.
TRAINER = """\
def classifier_loss(Y_hat, Y, averaged=True):  # d2l.Classifier.loss
    Y_hat = Y_hat.reshape((-1, Y_hat.shape[-1]))
    Y = Y.reshape((-1,))
    return F.cross_entropy(Y_hat, Y, reduction='mean' if averaged else 'none')

def clip_gradients(grad_clip_val, model):  # d2l.Trainer.clip_gradients
    params = [p for p in model.parameters() if p.requires_grad]
    norm = torch.sqrt(sum(torch.sum((p.grad ** 2)) for p in params))
    if norm > grad_clip_val:
        for param in params:
            param.grad[:] *= grad_clip_val / norm

def fit(model, batches, lr, gradient_clip_val=0):  # d2l.Trainer.fit / fit_epoch
    optim = torch.optim.SGD(model.parameters(), lr=lr)  # d2l.Module.configure_optimizers
    model.train()
    losses = []
    for X, Y in batches:
        loss = classifier_loss(model(X), Y)  # d2l.Module.training_step
        optim.zero_grad()
        with torch.no_grad():
            loss.backward()
            if gradient_clip_val > 0:
                clip_gradients(gradient_clip_val, model)
            optim.step()
        losses.append(loss.detach())
    return losses
"""

# Two Fashion-MNIST-shaped minibatches (d2l.FashionMNIST: 1x28x28 images, 10 classes).
FASHION = """\
batches = [(torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))) for _ in range(2)]
"""

# d2l.TimeMachine(batch_size, num_steps): X and Y are token ids, Y shifted by one step;
# the character vocabulary has 28 tokens.
TIME_MACHINE = """\
vocab_size, num_steps, batch_size = 28, 8, 4
corpus = torch.randint(0, vocab_size, (batch_size, num_steps + 1))
batches = [(corpus[:, :-1], corpus[:, 1:])]
"""

# d2l.RNNScratch (chapter_recurrent-neural-networks/rnn-scratch.md, "RNN Model").
RNN_SCRATCH = """\
class RNNScratch(nn.Module):
    \"\"\"The RNN model implemented from scratch.\"\"\"
    def __init__(self, num_inputs, num_hiddens, sigma=0.01):
        super().__init__()
        self.num_inputs, self.num_hiddens, self.sigma = num_inputs, num_hiddens, sigma
        self.W_xh = nn.Parameter(
            torch.randn(num_inputs, num_hiddens) * sigma)
        self.W_hh = nn.Parameter(
            torch.randn(num_hiddens, num_hiddens) * sigma)
        self.b_h = nn.Parameter(torch.zeros(num_hiddens))

    def forward(self, inputs, state=None):
        if state is None:
            # Initial state with shape: (batch_size, num_hiddens)
            state = torch.zeros((inputs.shape[1], self.num_hiddens),
                              device=inputs.device)
        else:
            state, = state
        outputs = []
        for X in inputs:  # Shape of inputs: (num_steps, batch_size, num_inputs)
            state = torch.tanh(torch.matmul(X, self.W_xh) +
                             torch.matmul(state, self.W_hh) + self.b_h)
            outputs.append(state)
        return outputs, state
"""

# d2l.RNNLMScratch (chapter_recurrent-neural-networks/rnn-scratch.md, "RNN-Based Language
# Model"), with d2l.Classifier.loss and save_hyperparameters spelled out.
RNNLM_SCRATCH = """\
class RNNLMScratch(nn.Module):
    \"\"\"The RNN-based language model implemented from scratch.\"\"\"
    def __init__(self, rnn, vocab_size, lr=0.01):
        super().__init__()
        self.rnn, self.vocab_size, self.lr = rnn, vocab_size, lr
        self.init_params()

    def init_params(self):
        self.W_hq = nn.Parameter(
            torch.randn(
                self.rnn.num_hiddens, self.vocab_size) * self.rnn.sigma)
        self.b_q = nn.Parameter(torch.zeros(self.vocab_size))

    def one_hot(self, X):
        # Output shape: (num_steps, batch_size, vocab_size)
        return F.one_hot(X.T, self.vocab_size).type(torch.float32)

    def output_layer(self, rnn_outputs):
        outputs = [torch.matmul(H, self.W_hq) + self.b_q for H in rnn_outputs]
        return torch.stack(outputs, 1)

    def forward(self, X, state=None):
        embs = self.one_hot(X)
        rnn_outputs, _ = self.rnn(embs, state)
        return self.output_layer(rnn_outputs)
"""

# d2l.RNNLM (chapter_recurrent-neural-networks/rnn-concise.md, "Defining the Model").
RNNLM_CONCISE = RNNLM_SCRATCH + """\

class RNNLM(RNNLMScratch):
    \"\"\"The RNN-based language model implemented with high-level APIs.\"\"\"
    def init_params(self):
        self.linear = nn.LazyLinear(self.vocab_size)

    def output_layer(self, hiddens):
        return torch.swapaxes(self.linear(hiddens), 0, 1)
"""

# chapter_attention-mechanisms-and-transformers/attention-scoring-functions.md,
# "Masked Softmax Operation" and "Scaled Dot Product Attention".
ATTENTION = """\
def masked_softmax(X, valid_lens):
    \"\"\"Perform softmax operation by masking elements on the last axis.\"\"\"
    # X: 3D tensor, valid_lens: 1D or 2D tensor
    def _sequence_mask(X, valid_len, value=0):
        maxlen = X.size(1)
        mask = torch.arange((maxlen), dtype=torch.float32,
                            device=X.device)[None, :] < valid_len[:, None]
        X[~mask] = value
        return X

    if valid_lens is None:
        return nn.functional.softmax(X, dim=-1)
    else:
        shape = X.shape
        if valid_lens.dim() == 1:
            valid_lens = torch.repeat_interleave(valid_lens, shape[1])
        else:
            valid_lens = valid_lens.reshape(-1)
        # On the last axis, replace masked elements with a very large negative
        # value, whose exponentiation outputs 0
        X = _sequence_mask(X.reshape(-1, shape[-1]), valid_lens, value=-1e6)
        return nn.functional.softmax(X.reshape(shape), dim=-1)

class DotProductAttention(nn.Module):
    \"\"\"Scaled dot product attention.\"\"\"
    def __init__(self, dropout):
        super().__init__()
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries, keys, values, valid_lens=None):
        d = queries.shape[-1]
        # Swap the last two dimensions of keys with keys.transpose(1, 2)
        scores = torch.bmm(queries, keys.transpose(1, 2)) / math.sqrt(d)
        self.attention_weights = masked_softmax(scores, valid_lens)
        return torch.bmm(self.dropout(self.attention_weights), values)
"""

# chapter_attention-mechanisms-and-transformers/multihead-attention.md, "Implementation".
MULTIHEAD = ATTENTION + """\

class MultiHeadAttention(nn.Module):
    \"\"\"Multi-head attention.\"\"\"
    def __init__(self, num_hiddens, num_heads, dropout, bias=False, **kwargs):
        super().__init__()
        self.num_heads = num_heads
        self.attention = DotProductAttention(dropout)
        self.W_q = nn.LazyLinear(num_hiddens, bias=bias)
        self.W_k = nn.LazyLinear(num_hiddens, bias=bias)
        self.W_v = nn.LazyLinear(num_hiddens, bias=bias)
        self.W_o = nn.LazyLinear(num_hiddens, bias=bias)

    def forward(self, queries, keys, values, valid_lens):
        queries = self.transpose_qkv(self.W_q(queries))
        keys = self.transpose_qkv(self.W_k(keys))
        values = self.transpose_qkv(self.W_v(values))
        if valid_lens is not None:
            # On axis 0, copy the first item (scalar or vector) for num_heads
            # times, then copy the next item, and so on
            valid_lens = torch.repeat_interleave(
                valid_lens, repeats=self.num_heads, dim=0)
        output = self.attention(queries, keys, values, valid_lens)
        output_concat = self.transpose_output(output)
        return self.W_o(output_concat)

    def transpose_qkv(self, X):
        \"\"\"Transposition for parallel computation of multiple attention heads.\"\"\"
        X = X.reshape(X.shape[0], X.shape[1], self.num_heads, -1)
        X = X.permute(0, 2, 1, 3)
        return X.reshape(-1, X.shape[2], X.shape[3])

    def transpose_output(self, X):
        \"\"\"Reverse the operation of transpose_qkv.\"\"\"
        X = X.reshape(-1, self.num_heads, X.shape[1], X.shape[2])
        X = X.permute(0, 2, 1, 3)
        return X.reshape(X.shape[0], X.shape[1], -1)
"""

# chapter_attention-mechanisms-and-transformers/self-attention-and-positional-encoding.md,
# "Positional Encoding"; transformer.md, "Positionwise Feed-Forward Networks", "Residual
# Connection and Layer Normalization", "Encoder".
TRANSFORMER = MULTIHEAD + """\

class PositionalEncoding(nn.Module):
    \"\"\"Positional encoding.\"\"\"
    def __init__(self, num_hiddens, dropout, max_len=1000):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        # Create a long enough P
        self.P = torch.zeros((1, max_len, num_hiddens))
        X = torch.arange(max_len, dtype=torch.float32).reshape(
            -1, 1) / torch.pow(10000, torch.arange(
            0, num_hiddens, 2, dtype=torch.float32) / num_hiddens)
        self.P[:, :, 0::2] = torch.sin(X)
        self.P[:, :, 1::2] = torch.cos(X)

    def forward(self, X):
        X = X + self.P[:, :X.shape[1], :].to(X.device)
        return self.dropout(X)

class PositionWiseFFN(nn.Module):
    \"\"\"The positionwise feed-forward network.\"\"\"
    def __init__(self, ffn_num_hiddens, ffn_num_outputs):
        super().__init__()
        self.dense1 = nn.LazyLinear(ffn_num_hiddens)
        self.relu = nn.ReLU()
        self.dense2 = nn.LazyLinear(ffn_num_outputs)

    def forward(self, X):
        return self.dense2(self.relu(self.dense1(X)))

class AddNorm(nn.Module):
    \"\"\"The residual connection followed by layer normalization.\"\"\"
    def __init__(self, norm_shape, dropout):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.ln = nn.LayerNorm(norm_shape)

    def forward(self, X, Y):
        return self.ln(self.dropout(Y) + X)

class TransformerEncoderBlock(nn.Module):
    \"\"\"The Transformer encoder block.\"\"\"
    def __init__(self, num_hiddens, ffn_num_hiddens, num_heads, dropout,
                 use_bias=False):
        super().__init__()
        self.attention = MultiHeadAttention(num_hiddens, num_heads,
                                            dropout, use_bias)
        self.addnorm1 = AddNorm(num_hiddens, dropout)
        self.ffn = PositionWiseFFN(ffn_num_hiddens, num_hiddens)
        self.addnorm2 = AddNorm(num_hiddens, dropout)

    def forward(self, X, valid_lens):
        Y = self.addnorm1(X, self.attention(X, X, X, valid_lens))
        return self.addnorm2(Y, self.ffn(Y))

class TransformerEncoder(nn.Module):
    \"\"\"The Transformer encoder.\"\"\"
    def __init__(self, vocab_size, num_hiddens, ffn_num_hiddens,
                 num_heads, num_blks, dropout, use_bias=False):
        super().__init__()
        self.num_hiddens = num_hiddens
        self.embedding = nn.Embedding(vocab_size, num_hiddens)
        self.pos_encoding = PositionalEncoding(num_hiddens, dropout)
        self.blks = nn.Sequential()
        for i in range(num_blks):
            self.blks.add_module("block"+str(i), TransformerEncoderBlock(
                num_hiddens, ffn_num_hiddens, num_heads, dropout, use_bias))

    def forward(self, X, valid_lens):
        X = self.pos_encoding(self.embedding(X) * math.sqrt(self.num_hiddens))
        self.attention_weights = [None] * len(self.blks)
        for i, blk in enumerate(self.blks):
            X = blk(X, valid_lens)
            self.attention_weights[
                i] = blk.attention.attention.attention_weights
        return X
"""

# chapter_optimization/minibatch-sgd.md, "Implementation from Scratch" (d2l.get_data_ch11,
# d2l.load_array, d2l.train_ch11 without its animator; the airfoil data as standardised
# noise of the same width, 5 features + 1 target).
CH11 = """\
def load_array(data_arrays, batch_size, is_train=True):  # d2l.load_array
    dataset = torch.utils.data.TensorDataset(*data_arrays)
    return torch.utils.data.DataLoader(dataset, batch_size, shuffle=is_train)

def get_data_ch11(batch_size=10, n=40):  # d2l.get_data_ch11, synthetic airfoil
    data = torch.randn(n, 6)
    data = (data - data.mean(axis=0)) / data.std(axis=0)
    data_iter = load_array((data[:n, :-1], data[:n, -1]),
                           batch_size, is_train=True)
    return data_iter, data.shape[1]-1

def linreg(X, w, b):  # d2l.linreg
    return torch.matmul(X, w) + b

def squared_loss(y_hat, y):  # d2l.squared_loss
    return (y_hat - y.reshape(y_hat.shape)) ** 2 / 2

def train_ch11(trainer_fn, states, hyperparams, data_iter,
               feature_dim, num_epochs=2):  # d2l.train_ch11, minus the animator
    w = torch.normal(mean=0.0, std=0.01, size=(feature_dim, 1),
                     requires_grad=True)
    b = torch.zeros((1), requires_grad=True)
    net, loss = lambda X: linreg(X, w, b), squared_loss
    losses = []
    for _ in range(num_epochs):
        for X, y in data_iter:
            l = loss(net(X), y).mean()
            l.backward()
            trainer_fn([w, b], states, hyperparams)
            losses.append(l.detach())
    return w, b, losses

def train_concise_ch11(trainer_fn, hyperparams, data_iter, num_epochs=4):
    # d2l.train_concise_ch11, minus the animator
    net = nn.Sequential(nn.Linear(5, 1))
    def init_weights(module):
        if type(module) == nn.Linear:
            torch.nn.init.normal_(module.weight, std=0.01)
    net.apply(init_weights)

    optimizer = trainer_fn(net.parameters(), **hyperparams)
    loss = nn.MSELoss(reduction='none')
    losses = []
    for _ in range(num_epochs):
        for X, y in data_iter:
            optimizer.zero_grad()
            out = net(X)
            y = y.reshape(out.shape)
            l = loss(out, y)
            l.mean().backward()
            optimizer.step()
            losses.append(l.detach())
    return net, losses

data_iter, feature_dim = get_data_ch11(batch_size=10)
"""


def _cell(name: str, citation: str, *parts: str) -> Cell:
    return Cell(name, citation, "\n".join(p.strip("\n") + "\n" for p in (IMPORTS, *parts)))


CELLS: list[Cell] = [
    # ------------------------------------------------------------------ 7. CNNs
    _cell(
        "corr2d_and_Conv2D",
        "chapter_convolutional-neural-networks/conv-layer.md: 'The Cross-Correlation Operation', "
        "'Convolutional Layers', 'Object Edge Detection in Images'",
        """
def corr2d(X, K):
    \"\"\"Compute 2D cross-correlation.\"\"\"
    h, w = K.shape
    Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = torch.sum((X[i: i + h, j: j + w] * K))
    return Y

X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
out1 = corr2d(X, K)

class Conv2D(nn.Module):
    def __init__(self, kernel_size):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(kernel_size))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return corr2d(x, self.weight) + self.bias

X = torch.ones((6, 8))
X[:, 2:6] = 0
K = torch.tensor([[1.0, -1.0]])
Y = corr2d(X, K)
Yt = corr2d(X.T, K)
# the chapter defines Conv2D and trains a built-in layer; one loss step through it here
layer = Conv2D(kernel_size=(1, 2))
l = ((layer(X) - Y) ** 2).sum()
l.backward()
outputs = [out1, Y, Yt, l]
params = [layer.weight, layer.bias]
""",
    ),
    _cell(
        "learning_a_kernel",
        "chapter_convolutional-neural-networks/conv-layer.md: 'Learning a Kernel'",
        """
def corr2d(X, K):
    h, w = K.shape
    Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = torch.sum((X[i: i + h, j: j + w] * K))
    return Y

X = torch.ones((6, 8))
X[:, 2:6] = 0
K = torch.tensor([[1.0, -1.0]])
Y = corr2d(X, K)

# Construct a two-dimensional convolutional layer with 1 output channel and a
# kernel of shape (1, 2). For the sake of simplicity, we ignore the bias here
conv2d = nn.LazyConv2d(1, kernel_size=(1, 2), bias=False)

X = X.reshape((1, 1, 6, 8))
Y = Y.reshape((1, 1, 6, 7))
lr = 3e-2  # Learning rate

losses = []
for i in range(10):
    Y_hat = conv2d(X)
    l = (Y_hat - Y) ** 2
    conv2d.zero_grad()
    l.sum().backward()
    # Update the kernel
    conv2d.weight.data[:] -= lr * conv2d.weight.grad
    losses.append(l.sum().detach())

outputs = [torch.stack(losses), conv2d.weight.data.reshape((1, 2))]
params = [conv2d.weight]
""",
    ),
    _cell(
        "padding_and_strides",
        "chapter_convolutional-neural-networks/padding-and-strides.md: 'Padding', 'Stride'",
        """
def comp_conv2d(conv2d, X):
    # (1, 1) indicates that batch size and the number of channels are both 1
    X = X.reshape((1, 1) + X.shape)
    Y = conv2d(X)
    # Strip the first two dimensions: examples and channels
    return Y.reshape(Y.shape[2:])

X = torch.rand(size=(8, 8))
layers = [
    nn.LazyConv2d(1, kernel_size=3, padding=1),
    nn.LazyConv2d(1, kernel_size=(5, 3), padding=(2, 1)),
    nn.LazyConv2d(1, kernel_size=3, padding=1, stride=2),
    nn.LazyConv2d(1, kernel_size=(3, 5), padding=(0, 1), stride=(3, 4)),
]
outs = [comp_conv2d(conv2d, X) for conv2d in layers]
assert [tuple(o.shape) for o in outs] == [(8, 8), (8, 8), (4, 4), (2, 2)]
sum(o.sum() for o in outs).backward()
outputs = outs
params = [p for conv2d in layers for p in conv2d.parameters()]
""",
    ),
    _cell(
        "multiple_channels_and_1x1",
        "chapter_convolutional-neural-networks/channels.md: 'Multiple Input Channels', "
        "'Multiple Output Channels', '1x1 Convolutional Layer'",
        """
def corr2d(X, K):
    h, w = K.shape
    Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = torch.sum((X[i: i + h, j: j + w] * K))
    return Y

def corr2d_multi_in(X, K):
    # Iterate through the 0th dimension (channel) of K first, then add them up
    return sum(corr2d(x, k) for x, k in zip(X, K))

def corr2d_multi_in_out(X, K):
    # Iterate through the 0th dimension of K, and each time, perform
    # cross-correlation operations with input X. All of the results are
    # stacked together
    return torch.stack([corr2d_multi_in(X, k) for k in K], 0)

def corr2d_multi_in_out_1x1(X, K):
    c_i, h, w = X.shape
    c_o = K.shape[0]
    X = X.reshape((c_i, h * w))
    K = K.reshape((c_o, c_i))
    # Matrix multiplication in the fully connected layer
    Y = torch.matmul(K, X)
    return Y.reshape((c_o, h, w))

X = torch.tensor([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]],
               [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]])
K = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])
out_in = corr2d_multi_in(X, K)
K = torch.stack((K, K + 1, K + 2), 0)
out_in_out = corr2d_multi_in_out(X, K)

# the 1x1 comparison, with gradients through both forms
X = torch.normal(0, 1, (3, 3, 3)).requires_grad_()
K = torch.normal(0, 1, (2, 3, 1, 1)).requires_grad_()
Y1 = corr2d_multi_in_out_1x1(X, K)
Y2 = corr2d_multi_in_out(X, K)
assert float(torch.sum(torch.abs(Y1 - Y2))) < 1e-6
(Y1 * Y2).sum().backward()
outputs = [out_in, out_in_out, Y1, Y2]
params = [X, K]
""",
    ),
    _cell(
        "pooling",
        "chapter_convolutional-neural-networks/pooling.md: 'Maximum Pooling and Average Pooling', "
        "'Padding and Stride', 'Multiple Channels'",
        """
def pool2d(X, pool_size, mode='max'):
    p_h, p_w = pool_size
    Y = torch.zeros((X.shape[0] - p_h + 1, X.shape[1] - p_w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            if mode == 'max':
                Y[i, j] = X[i: i + p_h, j: j + p_w].max()
            elif mode == 'avg':
                Y[i, j] = X[i: i + p_h, j: j + p_w].mean()
    return Y

X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]], requires_grad=True)
p_max = pool2d(X, (2, 2))
p_avg = pool2d(X, (2, 2), 'avg')
(p_max.sum() + p_avg.sum()).backward()

X4 = torch.arange(16, dtype=torch.float32).reshape((1, 1, 4, 4)).requires_grad_()
pool2d_a = nn.MaxPool2d(3)
pool2d_b = nn.MaxPool2d(3, padding=1, stride=2)
pool2d_c = nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))
outs = [pool2d_a(X4), pool2d_b(X4), pool2d_c(X4)]
X2 = torch.cat((X4, X4 + 1), 1)
outs.append(pool2d_b(X2))
sum(o.sum() for o in outs).backward()
outputs = [p_max, p_avg, *outs]
params = [X, X4]
""",
    ),
    _cell(
        "lenet",
        "chapter_convolutional-neural-networks/lenet.md: 'LeNet' (init_cnn, LeNet, "
        "layer_summary), 'Training'",
        TRAINER,
        FASHION,
        """
def init_cnn(module):
    \"\"\"Initialize weights for CNNs.\"\"\"
    if type(module) == nn.Linear or type(module) == nn.Conv2d:
        nn.init.xavier_uniform_(module.weight)

class LeNet(nn.Module):
    \"\"\"The LeNet-5 model.\"\"\"
    def __init__(self, lr=0.1, num_classes=10):
        super().__init__()
        self.lr, self.num_classes = lr, num_classes
        self.net = nn.Sequential(
            nn.LazyConv2d(6, kernel_size=5, padding=2), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.LazyConv2d(16, kernel_size=5), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(),
            nn.LazyLinear(120), nn.Sigmoid(),
            nn.LazyLinear(84), nn.Sigmoid(),
            nn.LazyLinear(num_classes))

    def forward(self, X):
        return self.net(X)

    def layer_summary(self, X_shape):
        X = torch.randn(*X_shape)
        shapes = []
        for layer in self.net:
            X = layer(X)
            shapes.append((layer.__class__.__name__, tuple(X.shape)))
        return shapes

model = LeNet(lr=0.1)
summary = model.layer_summary((1, 1, 28, 28))
assert summary[-1] == ('Linear', (1, 10))
# model.apply_init([next(iter(data.get_dataloader(True)))[0]], init_cnn)
model(batches[0][0])
model.net.apply(init_cnn)
losses = fit(model, batches, lr=model.lr)
outputs = [*losses, model(batches[0][0])]
params = list(model.parameters())
""",
    ),
    # ------------------------------------------------------------------ 8. modern CNNs
    _cell(
        "batch_norm_scratch",
        "chapter_convolutional-modern/batch-norm.md: 'Implementation from Scratch', "
        "'LeNet with Batch Normalization'",
        TRAINER,
        FASHION,
        """
def batch_norm(X, gamma, beta, moving_mean, moving_var, eps, momentum):
    # Use is_grad_enabled to determine whether we are in training mode
    if not torch.is_grad_enabled():
        # In prediction mode, use mean and variance obtained by moving average
        X_hat = (X - moving_mean) / torch.sqrt(moving_var + eps)
    else:
        assert len(X.shape) in (2, 4)
        if len(X.shape) == 2:
            # When using a fully connected layer, calculate the mean and
            # variance on the feature dimension
            mean = X.mean(dim=0)
            var = ((X - mean) ** 2).mean(dim=0)
        else:
            # When using a two-dimensional convolutional layer, calculate the
            # mean and variance on the channel dimension (axis=1). Here we
            # need to maintain the shape of X, so that the broadcasting
            # operation can be carried out later
            mean = X.mean(dim=(0, 2, 3), keepdim=True)
            var = ((X - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        # In training mode, the current mean and variance are used
        X_hat = (X - mean) / torch.sqrt(var + eps)
        # Update the mean and variance using moving average
        moving_mean = (1.0 - momentum) * moving_mean + momentum * mean
        moving_var = (1.0 - momentum) * moving_var + momentum * var
    Y = gamma * X_hat + beta  # Scale and shift
    return Y, moving_mean.data, moving_var.data

class BatchNorm(nn.Module):
    def __init__(self, num_features, num_dims):
        super().__init__()
        if num_dims == 2:
            shape = (1, num_features)
        else:
            shape = (1, num_features, 1, 1)
        self.gamma = nn.Parameter(torch.ones(shape))
        self.beta = nn.Parameter(torch.zeros(shape))
        self.moving_mean = torch.zeros(shape)
        self.moving_var = torch.ones(shape)

    def forward(self, X):
        if self.moving_mean.device != X.device:
            self.moving_mean = self.moving_mean.to(X.device)
            self.moving_var = self.moving_var.to(X.device)
        # Save the updated moving_mean and moving_var
        Y, self.moving_mean, self.moving_var = batch_norm(
            X, self.gamma, self.beta, self.moving_mean,
            self.moving_var, eps=1e-5, momentum=0.1)
        return Y

class BNLeNetScratch(nn.Module):
    def __init__(self, lr=0.1, num_classes=10):
        super().__init__()
        self.lr, self.num_classes = lr, num_classes
        self.net = nn.Sequential(
            nn.LazyConv2d(6, kernel_size=5), BatchNorm(6, num_dims=4),
            nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.LazyConv2d(16, kernel_size=5), BatchNorm(16, num_dims=4),
            nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(), nn.LazyLinear(120),
            BatchNorm(120, num_dims=2), nn.Sigmoid(), nn.LazyLinear(84),
            BatchNorm(84, num_dims=2), nn.Sigmoid(),
            nn.LazyLinear(num_classes))

    def forward(self, X):
        return self.net(X)

def init_cnn(module):
    if type(module) == nn.Linear or type(module) == nn.Conv2d:
        nn.init.xavier_uniform_(module.weight)

model = BNLeNetScratch(lr=0.1)
model(batches[0][0])
model.net.apply(init_cnn)
losses = fit(model, batches, lr=model.lr)
model.eval()
with torch.no_grad():  # prediction mode: the moving averages
    pred = model(batches[0][0])
outputs = [*losses, pred, model.net[1].gamma.reshape((-1,)), model.net[1].beta.reshape((-1,)),
           model.net[1].moving_mean, model.net[1].moving_var]
params = list(model.parameters())
""",
    ),
    _cell(
        "batch_norm_concise",
        "chapter_convolutional-modern/batch-norm.md: 'Concise Implementation'; "
        "chapter_attention-mechanisms-and-transformers/transformer.md: layer norm vs batch norm",
        TRAINER,
        FASHION,
        """
class BNLeNet(nn.Module):
    def __init__(self, lr=0.1, num_classes=10):
        super().__init__()
        self.lr, self.num_classes = lr, num_classes
        self.net = nn.Sequential(
            nn.LazyConv2d(6, kernel_size=5), nn.LazyBatchNorm2d(),
            nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.LazyConv2d(16, kernel_size=5), nn.LazyBatchNorm2d(),
            nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(), nn.LazyLinear(120), nn.LazyBatchNorm1d(),
            nn.Sigmoid(), nn.LazyLinear(84), nn.LazyBatchNorm1d(),
            nn.Sigmoid(), nn.LazyLinear(num_classes))

    def forward(self, X):
        return self.net(X)

def init_cnn(module):
    if type(module) == nn.Linear or type(module) == nn.Conv2d:
        nn.init.xavier_uniform_(module.weight)

model = BNLeNet(lr=0.1)
model(batches[0][0])
model.net.apply(init_cnn)
losses = fit(model, batches, lr=model.lr)
model.eval()
with torch.no_grad():
    pred = model(batches[0][0])

ln = nn.LayerNorm(2)
bn = nn.LazyBatchNorm1d()
X = torch.tensor([[1, 2], [2, 3]], dtype=torch.float32)
# Compute mean and variance from X in the training mode
ln_out, bn_out = ln(X), bn(X)
(ln_out.sum() + (bn_out ** 2).sum()).backward()
outputs = [*losses, pred, model.net[1].running_mean, model.net[1].running_var, ln_out, bn_out]
params = [*model.parameters(), *ln.parameters(), *bn.parameters()]
""",
    ),
    _cell(
        "resnet",
        "chapter_convolutional-modern/resnet.md: 'Residual Blocks', 'ResNet Model' "
        "(arch cut to ((1, 64), (1, 128)): ResNet-18's first two stages, one residual each)",
        TRAINER,
        FASHION,
        """
class Residual(nn.Module):
    \"\"\"The Residual block of ResNet models.\"\"\"
    def __init__(self, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1,
                                   stride=strides)
        self.conv2 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1,
                                       stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.LazyBatchNorm2d()
        self.bn2 = nn.LazyBatchNorm2d()

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)

blk = Residual(3)
X = torch.randn(4, 3, 6, 6)
out_a = blk(X)
blk2 = Residual(6, use_1x1conv=True, strides=2)
out_b = blk2(X)
assert out_a.shape == (4, 3, 6, 6) and out_b.shape == (4, 6, 3, 3)
(out_a.sum() + out_b.sum()).backward()

def init_cnn(module):
    if type(module) == nn.Linear or type(module) == nn.Conv2d:
        nn.init.xavier_uniform_(module.weight)

class ResNet(nn.Module):
    def b1(self):
        return nn.Sequential(
            nn.LazyConv2d(64, kernel_size=7, stride=2, padding=3),
            nn.LazyBatchNorm2d(), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

    def block(self, num_residuals, num_channels, first_block=False):
        blk = []
        for i in range(num_residuals):
            if i == 0 and not first_block:
                blk.append(Residual(num_channels, use_1x1conv=True, strides=2))
            else:
                blk.append(Residual(num_channels))
        return nn.Sequential(*blk)

    def __init__(self, arch, lr=0.1, num_classes=10):
        super(ResNet, self).__init__()
        self.lr = lr
        self.net = nn.Sequential(self.b1())
        for i, b in enumerate(arch):
            self.net.add_module(f'b{i+2}', self.block(*b, first_block=(i==0)))
        self.net.add_module('last', nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.LazyLinear(num_classes)))
        self.net.apply(init_cnn)

    def forward(self, X):
        return self.net(X)

model = ResNet(((1, 64), (1, 128)), lr=0.01)
model(batches[0][0])
model.net.apply(init_cnn)
losses = fit(model, batches, lr=model.lr)
outputs = [out_a, out_b, *losses]
params = [*blk.parameters(), *blk2.parameters(), *model.parameters()]
""",
    ),
    _cell(
        "nin_and_vgg_blocks",
        "chapter_convolutional-modern/nin.md: 'NiN Blocks', 'NiN Model'; "
        "chapter_convolutional-modern/vgg.md: 'VGG Blocks' (channels cut down, 28x28 input)",
        TRAINER,
        FASHION,
        """
def nin_block(out_channels, kernel_size, strides, padding):
    return nn.Sequential(
        nn.LazyConv2d(out_channels, kernel_size, strides, padding), nn.ReLU(),
        nn.LazyConv2d(out_channels, kernel_size=1), nn.ReLU(),
        nn.LazyConv2d(out_channels, kernel_size=1), nn.ReLU())

def vgg_block(num_convs, out_channels):
    layers = []
    for _ in range(num_convs):
        layers.append(nn.LazyConv2d(out_channels, kernel_size=3, padding=1))
        layers.append(nn.ReLU())
    layers.append(nn.MaxPool2d(kernel_size=2,stride=2))
    return nn.Sequential(*layers)

class NiN(nn.Module):
    def __init__(self, lr=0.1, num_classes=10):
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(
            vgg_block(2, 4),
            nin_block(8, kernel_size=5, strides=1, padding=2),
            nn.MaxPool2d(3, stride=2),
            nn.Dropout(0.5),
            nin_block(num_classes, kernel_size=3, strides=1, padding=1),
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten())

    def forward(self, X):
        return self.net(X)

def init_cnn(module):
    if type(module) == nn.Linear or type(module) == nn.Conv2d:
        nn.init.xavier_uniform_(module.weight)

model = NiN(lr=0.05)
model(batches[0][0])
model.net.apply(init_cnn)
losses = fit(model, batches, lr=model.lr)
outputs = losses
params = list(model.parameters())
""",
    ),
    # ------------------------------------------------------------------ 9. RNNs
    _cell(
        "rnn_scratch",
        "chapter_recurrent-neural-networks/rnn-scratch.md: 'RNN Model', 'RNN-Based Language "
        "Model', 'One-Hot Encoding', 'Gradient Clipping', 'Training', 'Decoding'",
        TRAINER,
        TIME_MACHINE,
        RNN_SCRATCH,
        RNNLM_SCRATCH,
        """
def predict(self, prefix, num_preds, vocab, device=None):  # RNNLMScratch.predict
    state, outputs = None, [vocab[prefix[0]]]
    for i in range(len(prefix) + num_preds - 1):
        X = torch.tensor([[outputs[-1]]], device=device)
        embs = self.one_hot(X)
        rnn_outputs, state = self.rnn(embs, state)
        if i < len(prefix) - 1:  # Warm-up period
            outputs.append(vocab[prefix[i + 1]])
        else:  # Predict num_preds steps
            Y = self.output_layer(rnn_outputs)
            outputs.append(int(torch.reshape(torch.argmax(Y, axis=2), (1,))))
    return outputs

batch_size, num_inputs, num_hiddens, num_steps = 2, 16, 32, 100
rnn = RNNScratch(num_inputs, num_hiddens)
X = torch.ones((num_steps, batch_size, num_inputs))
rnn_outputs, state = rnn(X)
assert len(rnn_outputs) == num_steps and state.shape == (batch_size, num_hiddens)

model = RNNLMScratch(rnn, num_inputs)
out = model(torch.ones((batch_size, num_steps), dtype=torch.int64))
assert out.shape == (batch_size, num_steps, num_inputs)

rnn = RNNScratch(num_inputs=vocab_size, num_hiddens=32)
model = RNNLMScratch(rnn, vocab_size=vocab_size, lr=1)
losses = fit(model, batches, lr=model.lr, gradient_clip_val=1)
letters = 'abcdefghijklmnopqrstuvwxyz'  # a 28-token vocab: <unk>, ' ', a-z
token_to_idx = {t: i for i, t in enumerate(['<unk>', ' ', *letters])}
predicted = predict(model, 'it has', 5, token_to_idx)
outputs = [out, *losses, torch.tensor(predicted)]
params = list(model.parameters())
""",
    ),
    _cell(
        "rnn_concise",
        "chapter_recurrent-neural-networks/rnn-concise.md: 'Defining the Model', "
        "'Training and Predicting'",
        TRAINER,
        TIME_MACHINE,
        """
class RNN(nn.Module):
    \"\"\"The RNN model implemented with high-level APIs.\"\"\"
    def __init__(self, num_inputs, num_hiddens):
        super().__init__()
        self.num_inputs, self.num_hiddens = num_inputs, num_hiddens
        self.rnn = nn.RNN(num_inputs, num_hiddens)

    def forward(self, inputs, H=None):
        return self.rnn(inputs, H)
""",
        RNNLM_CONCISE,
        """
rnn = RNN(num_inputs=vocab_size, num_hiddens=32)
model = RNNLM(rnn, vocab_size=vocab_size, lr=1)
losses = fit(model, batches, lr=model.lr, gradient_clip_val=1)
outputs = [*losses, model(batches[0][0])]
params = list(model.parameters())
""",
    ),
    _cell(
        "lstm_scratch",
        "chapter_recurrent-modern/lstm.md: 'Implementation from Scratch' (Initializing Model "
        "Parameters, Defining the Model, Training and Prediction)",
        TRAINER,
        TIME_MACHINE,
        RNNLM_SCRATCH,
        """
class LSTMScratch(nn.Module):
    def __init__(self, num_inputs, num_hiddens, sigma=0.01):
        super().__init__()
        self.num_inputs, self.num_hiddens, self.sigma = num_inputs, num_hiddens, sigma

        init_weight = lambda *shape: nn.Parameter(torch.randn(*shape) * sigma)
        triple = lambda: (init_weight(num_inputs, num_hiddens),
                          init_weight(num_hiddens, num_hiddens),
                          nn.Parameter(torch.zeros(num_hiddens)))

        self.W_xi, self.W_hi, self.b_i = triple()  # Input gate
        self.W_xf, self.W_hf, self.b_f = triple()  # Forget gate
        self.W_xo, self.W_ho, self.b_o = triple()  # Output gate
        self.W_xc, self.W_hc, self.b_c = triple()  # Input node

    def forward(self, inputs, H_C=None):
        if H_C is None:
            # Initial state with shape: (batch_size, num_hiddens)
            H = torch.zeros((inputs.shape[1], self.num_hiddens),
                          device=inputs.device)
            C = torch.zeros((inputs.shape[1], self.num_hiddens),
                          device=inputs.device)
        else:
            H, C = H_C
        outputs = []
        for X in inputs:
            I = torch.sigmoid(torch.matmul(X, self.W_xi) +
                            torch.matmul(H, self.W_hi) + self.b_i)
            F = torch.sigmoid(torch.matmul(X, self.W_xf) +
                            torch.matmul(H, self.W_hf) + self.b_f)
            O = torch.sigmoid(torch.matmul(X, self.W_xo) +
                            torch.matmul(H, self.W_ho) + self.b_o)
            C_tilde = torch.tanh(torch.matmul(X, self.W_xc) +
                               torch.matmul(H, self.W_hc) + self.b_c)
            C = F * C + I * C_tilde
            H = O * torch.tanh(C)
            outputs.append(H)
        return outputs, (H, C)

lstm = LSTMScratch(num_inputs=vocab_size, num_hiddens=32)
model = RNNLMScratch(lstm, vocab_size=vocab_size, lr=4)
losses = fit(model, batches, lr=model.lr, gradient_clip_val=1)
outputs = [*losses, model(batches[0][0])]
params = list(model.parameters())
""",
    ),
    _cell(
        "lstm_concise",
        "chapter_recurrent-modern/lstm.md: 'Concise Implementation'",
        TRAINER,
        TIME_MACHINE,
        RNNLM_CONCISE,
        """
class LSTM(nn.Module):
    def __init__(self, num_inputs, num_hiddens):
        super().__init__()
        self.num_inputs, self.num_hiddens = num_inputs, num_hiddens
        self.rnn = nn.LSTM(num_inputs, num_hiddens)

    def forward(self, inputs, H_C=None):
        return self.rnn(inputs, H_C)

lstm = LSTM(num_inputs=vocab_size, num_hiddens=32)
model = RNNLM(lstm, vocab_size=vocab_size, lr=4)
losses = fit(model, batches, lr=model.lr, gradient_clip_val=1)
outputs = [*losses, model(batches[0][0])]
params = list(model.parameters())
""",
    ),
    _cell(
        "gru_scratch",
        "chapter_recurrent-modern/gru.md: 'Implementation from Scratch'",
        TRAINER,
        TIME_MACHINE,
        RNNLM_SCRATCH,
        """
class GRUScratch(nn.Module):
    def __init__(self, num_inputs, num_hiddens, sigma=0.01):
        super().__init__()
        self.num_inputs, self.num_hiddens, self.sigma = num_inputs, num_hiddens, sigma

        init_weight = lambda *shape: nn.Parameter(torch.randn(*shape) * sigma)
        triple = lambda: (init_weight(num_inputs, num_hiddens),
                          init_weight(num_hiddens, num_hiddens),
                          nn.Parameter(torch.zeros(num_hiddens)))

        self.W_xz, self.W_hz, self.b_z = triple()  # Update gate
        self.W_xr, self.W_hr, self.b_r = triple()  # Reset gate
        self.W_xh, self.W_hh, self.b_h = triple()  # Candidate hidden state

    def forward(self, inputs, H=None):
        if H is None:
            # Initial state with shape: (batch_size, num_hiddens)
            H = torch.zeros((inputs.shape[1], self.num_hiddens),
                          device=inputs.device)
        outputs = []
        for X in inputs:
            Z = torch.sigmoid(torch.matmul(X, self.W_xz) +
                            torch.matmul(H, self.W_hz) + self.b_z)
            R = torch.sigmoid(torch.matmul(X, self.W_xr) +
                            torch.matmul(H, self.W_hr) + self.b_r)
            H_tilde = torch.tanh(torch.matmul(X, self.W_xh) +
                               torch.matmul(R * H, self.W_hh) + self.b_h)
            H = Z * H + (1 - Z) * H_tilde
            outputs.append(H)
        return outputs, H

gru = GRUScratch(num_inputs=vocab_size, num_hiddens=32)
model = RNNLMScratch(gru, vocab_size=vocab_size, lr=4)
losses = fit(model, batches, lr=model.lr, gradient_clip_val=1)
outputs = [*losses, model(batches[0][0])]
params = list(model.parameters())
""",
    ),
    _cell(
        "gru_concise",
        "chapter_recurrent-modern/gru.md: 'Concise Implementation'",
        TRAINER,
        TIME_MACHINE,
        RNNLM_CONCISE,
        """
class GRU(nn.Module):
    def __init__(self, num_inputs, num_hiddens):
        super().__init__()
        self.num_inputs, self.num_hiddens = num_inputs, num_hiddens
        self.rnn = nn.GRU(num_inputs, num_hiddens)

    def forward(self, inputs, H=None):
        return self.rnn(inputs, H)

gru = GRU(num_inputs=vocab_size, num_hiddens=32)
model = RNNLM(gru, vocab_size=vocab_size, lr=4)
losses = fit(model, batches, lr=model.lr, gradient_clip_val=1)
outputs = [*losses, model(batches[0][0])]
params = list(model.parameters())
""",
    ),
    _cell(
        "deep_rnn",
        "chapter_recurrent-modern/deep-rnn.md: 'Implementation from Scratch' "
        "(StackedRNNScratch), 'Concise Implementation' (multilayer GRU)",
        TRAINER,
        TIME_MACHINE,
        RNN_SCRATCH,
        RNNLM_CONCISE,
        """
class StackedRNNScratch(nn.Module):
    def __init__(self, num_inputs, num_hiddens, num_layers, sigma=0.01):
        super().__init__()
        self.num_inputs, self.num_hiddens = num_inputs, num_hiddens
        self.num_layers, self.sigma = num_layers, sigma
        self.rnns = nn.Sequential(*[RNNScratch(
            num_inputs if i==0 else num_hiddens, num_hiddens, sigma)
                                    for i in range(num_layers)])

    def forward(self, inputs, Hs=None):
        outputs = inputs
        if Hs is None: Hs = [None] * self.num_layers
        for i in range(self.num_layers):
            outputs, Hs[i] = self.rnns[i](outputs, Hs[i])
            outputs = torch.stack(outputs, 0)
        return outputs, Hs

class GRU(nn.Module):
    \"\"\"The multilayer GRU model.\"\"\"
    def __init__(self, num_inputs, num_hiddens, num_layers, dropout=0):
        super().__init__()
        self.num_inputs, self.num_hiddens = num_inputs, num_hiddens
        self.num_layers, self.dropout = num_layers, dropout
        self.rnn = nn.GRU(num_inputs, num_hiddens, num_layers,
                          dropout=dropout)

    def forward(self, inputs, H=None):  # d2l.RNN.forward
        return self.rnn(inputs, H)

rnn_block = StackedRNNScratch(num_inputs=vocab_size,
                              num_hiddens=32, num_layers=2)
model = RNNLMScratch(rnn_block, vocab_size=vocab_size, lr=2)
losses_scratch = fit(model, batches, lr=model.lr, gradient_clip_val=1)
gru = GRU(num_inputs=vocab_size, num_hiddens=32, num_layers=2)
model2 = RNNLM(gru, vocab_size=vocab_size, lr=2)
losses_concise = fit(model2, batches, lr=model2.lr, gradient_clip_val=1)
outputs = [*losses_scratch, *losses_concise, model(batches[0][0]), model2(batches[0][0])]
params = [*model.parameters(), *model2.parameters()]
""",
    ),
    _cell(
        "seq2seq",
        "chapter_recurrent-modern/seq2seq.md: 'Encoder' (init_seq2seq_weights, Seq2SeqEncoder), "
        "'Decoder', 'Encoder-Decoder for Sequence to Sequence Learning', 'Loss Function with "
        "Masking', 'Training' (two-layer GRUs with dropout 0.2, Adam, gradient clipping); "
        "d2l.EncoderDecoder and d2l.GRU from chapter_recurrent-modern/encoder-decoder.md and "
        "deep-rnn.md; d2l.MTFraEng batches as random token ids",
        TRAINER,
        """
class GRU(nn.Module):  # d2l.GRU (deep-rnn.md)
    def __init__(self, num_inputs, num_hiddens, num_layers, dropout=0):
        super().__init__()
        self.num_hiddens = num_hiddens
        self.rnn = nn.GRU(num_inputs, num_hiddens, num_layers, dropout=dropout)

    def forward(self, inputs, H=None):
        return self.rnn(inputs, H)

def init_seq2seq_weights(layer):
    \"\"\"Initialize weights for Seq2Seq.\"\"\"
    if type(layer) == nn.Linear:
         nn.init.xavier_uniform_(layer.weight)
    if type(layer) == nn.GRU:
        for param in layer._flat_weights_names:
            if "weight" in param:
                nn.init.xavier_uniform_(layer._parameters[param])

class Seq2SeqEncoder(nn.Module):
    \"\"\"The RNN encoder for sequence to sequence learning.\"\"\"
    def __init__(self, vocab_size, embed_size, num_hiddens, num_layers,
                 dropout=0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = GRU(embed_size, num_hiddens, num_layers, dropout)
        self.apply(init_seq2seq_weights)

    def forward(self, X, *args):
        # X shape: (batch_size, num_steps)
        embs = self.embedding(X.t().type(torch.int64))
        # embs shape: (num_steps, batch_size, embed_size)
        output, state = self.rnn(embs)
        # output shape: (num_steps, batch_size, num_hiddens)
        # state shape: (num_layers, batch_size, num_hiddens)
        return output, state

class Seq2SeqDecoder(nn.Module):
    \"\"\"The RNN decoder for sequence to sequence learning.\"\"\"
    def __init__(self, vocab_size, embed_size, num_hiddens, num_layers,
                 dropout=0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = GRU(embed_size+num_hiddens, num_hiddens,
                       num_layers, dropout)
        self.dense = nn.Linear(num_hiddens, vocab_size)
        self.apply(init_seq2seq_weights)

    def init_state(self, enc_outputs, *args):
        return enc_outputs[1]

    def forward(self, X, enc_state):
        # X shape: (batch_size, num_steps)
        # embs shape: (num_steps, batch_size, embed_size)
        embs = self.embedding(X.t().type(torch.int32))
        # context shape: (batch_size, num_hiddens)
        context = enc_state[-1]
        # Broadcast context to (num_steps, batch_size, num_hiddens)
        context = context.repeat(embs.shape[0], 1, 1)
        # Concat at the feature dimension
        embs_and_context = torch.cat((embs, context), -1)
        outputs, state = self.rnn(embs_and_context, enc_state)
        outputs = self.dense(outputs).swapaxes(0, 1)
        # outputs shape: (batch_size, num_steps, vocab_size)
        # state shape: (num_layers, batch_size, num_hiddens)
        return outputs, state

class Seq2Seq(nn.Module):  # d2l.EncoderDecoder + Seq2Seq
    def __init__(self, encoder, decoder, tgt_pad, lr):
        super().__init__()
        self.encoder, self.decoder, self.tgt_pad, self.lr = encoder, decoder, tgt_pad, lr

    def forward(self, enc_X, dec_X, *args):
        enc_all_outputs = self.encoder(enc_X, *args)
        dec_state = self.decoder.init_state(enc_all_outputs, *args)
        # Return decoder output only
        return self.decoder(dec_X, dec_state)[0]

    def loss(self, Y_hat, Y):
        l = classifier_loss(Y_hat, Y, averaged=False)
        mask = (Y.reshape(-1) != self.tgt_pad).type(torch.float32)
        return torch.sum(l * mask) / torch.sum(mask)

    def configure_optimizers(self):
        # Adam optimizer is used here
        return torch.optim.Adam(self.parameters(), lr=self.lr)

src_vocab, tgt_vocab, num_steps, batch_size, pad = 18, 20, 9, 4, 0
def mt_batch():  # d2l.MTFraEng: (src, tgt, src_valid_len, label), padded with <pad>
    src = torch.randint(1, src_vocab, (batch_size, num_steps))
    label = torch.randint(1, tgt_vocab, (batch_size, num_steps))
    label[:, 6:] = pad
    tgt = torch.cat([torch.full((batch_size, 1), 2), label[:, :-1]], 1)  # <bos> first
    return src, tgt, torch.tensor([9, 7, 5, 9]), label

embed_size, num_hiddens, num_layers, dropout = 8, 16, 2, 0.2
encoder = Seq2SeqEncoder(src_vocab, embed_size, num_hiddens, num_layers, dropout)
decoder = Seq2SeqDecoder(tgt_vocab, embed_size, num_hiddens, num_layers, dropout)
model = Seq2Seq(encoder, decoder, tgt_pad=pad, lr=0.001)
optim = model.configure_optimizers()
model.train()
losses = []
for src, tgt, src_valid_len, label in [mt_batch() for _ in range(3)]:  # d2l.Trainer.fit_epoch
    loss = model.loss(model(src, tgt, src_valid_len), label)
    optim.zero_grad()
    with torch.no_grad():
        loss.backward()
        clip_gradients(1, model)
        optim.step()
    losses.append(loss.detach())
outputs = [*losses, model(src, tgt)]
params = list(model.parameters())
""",
    ),
    # ------------------------------------------------------------------ 11. attention
    _cell(
        "masked_softmax",
        "chapter_attention-mechanisms-and-transformers/attention-scoring-functions.md: "
        "'Masked Softmax Operation', 'Batch Matrix Multiplication'",
        ATTENTION,
        """
out1 = masked_softmax(torch.rand(2, 2, 4), torch.tensor([2, 3]))
out2 = masked_softmax(torch.rand(2, 2, 4), torch.tensor([[1, 3], [2, 4]]))
# the same, with a gradient flowing through the masked scores
scores = torch.rand(2, 2, 4, requires_grad=True)
out3 = masked_softmax(scores * 2, torch.tensor([2, 3]))
(out3 * torch.arange(4.0)).sum().backward()

Q = torch.ones((2, 3, 4))
K = torch.ones((2, 4, 6))
assert torch.bmm(Q, K).shape == (2, 3, 6)
outputs = [out1, out2, out3, torch.bmm(Q, K)]
params = [scores]
""",
    ),
    _cell(
        "dot_product_and_additive_attention",
        "chapter_attention-mechanisms-and-transformers/attention-scoring-functions.md: "
        "'Scaled Dot Product Attention', 'Additive Attention'",
        ATTENTION,
        """
class AdditiveAttention(nn.Module):
    \"\"\"Additive attention.\"\"\"
    def __init__(self, num_hiddens, dropout, **kwargs):
        super(AdditiveAttention, self).__init__(**kwargs)
        self.W_k = nn.LazyLinear(num_hiddens, bias=False)
        self.W_q = nn.LazyLinear(num_hiddens, bias=False)
        self.w_v = nn.LazyLinear(1, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries, keys, values, valid_lens):
        queries, keys = self.W_q(queries), self.W_k(keys)
        features = queries.unsqueeze(2) + keys.unsqueeze(1)
        features = torch.tanh(features)
        scores = self.w_v(features).squeeze(-1)
        self.attention_weights = masked_softmax(scores, valid_lens)
        return torch.bmm(self.dropout(self.attention_weights), values)

queries = torch.normal(0, 1, (2, 1, 2)).requires_grad_()
keys = torch.normal(0, 1, (2, 10, 2)).requires_grad_()
values = torch.normal(0, 1, (2, 10, 4)).requires_grad_()
valid_lens = torch.tensor([2, 6])
attention = DotProductAttention(dropout=0.5)
attention.eval()
out_dot = attention(queries, keys, values, valid_lens)
assert out_dot.shape == (2, 1, 4)
heat_dot = attention.attention_weights.reshape((1, 1, 2, 10))

queries20 = torch.normal(0, 1, (2, 1, 20))
attention = AdditiveAttention(num_hiddens=8, dropout=0.1)
attention.eval()
out_add = attention(queries20, keys, values, valid_lens)
assert out_add.shape == (2, 1, 4)
heat_add = attention.attention_weights.reshape((1, 1, 2, 10))
(out_dot.sum() + (out_add ** 2).sum()).backward()
outputs = [out_dot, heat_dot, out_add, heat_add]
params = [queries, keys, values, *attention.parameters()]
""",
    ),
    _cell(
        "multihead_attention",
        "chapter_attention-mechanisms-and-transformers/multihead-attention.md: 'Implementation'; "
        "self-attention-and-positional-encoding.md: 'Self-Attention'",
        MULTIHEAD,
        """
num_hiddens, num_heads = 100, 5
attention = MultiHeadAttention(num_hiddens, num_heads, 0.5)
batch_size, num_queries, num_kvpairs = 2, 4, 6
valid_lens = torch.tensor([3, 2])
X = torch.ones((batch_size, num_queries, num_hiddens))
Y = torch.ones((batch_size, num_kvpairs, num_hiddens))
out = attention(X, Y, Y, valid_lens)
assert out.shape == (batch_size, num_queries, num_hiddens)
# self-attention: queries, keys and values are all X
self_out = attention(X, X, X, valid_lens)
(out.sum() + self_out.sum()).backward()
outputs = [out, self_out]
params = list(attention.parameters())
""",
    ),
    _cell(
        "positional_encoding",
        "chapter_attention-mechanisms-and-transformers/self-attention-and-positional-encoding.md: "
        "'Positional Encoding', 'Absolute Positional Information'",
        TRANSFORMER,
        """
encoding_dim, num_steps = 32, 60
pos_encoding = PositionalEncoding(encoding_dim, 0)
X = pos_encoding(torch.zeros((1, num_steps, encoding_dim)))
P = pos_encoding.P[:, :X.shape[1], :]
cols = P[0, :, 6:10].T
P = P[0, :, :].unsqueeze(0).unsqueeze(0)
# a gradient through the encoding (dropout 0.1 in training mode, as the encoder uses it)
emb = torch.randn(2, 8, encoding_dim, requires_grad=True)
enc = PositionalEncoding(encoding_dim, 0.1)
Z = enc(emb)
(Z ** 2).sum().backward()
outputs = [X, cols, P, Z]
params = [emb]
""",
    ),
    _cell(
        "transformer_encoder",
        "chapter_attention-mechanisms-and-transformers/transformer.md: 'Positionwise "
        "Feed-Forward Networks', 'Residual Connection and Layer Normalization', 'Encoder'",
        TRANSFORMER,
        """
ffn = PositionWiseFFN(4, 8)
ffn.eval()
ffn_out = ffn(torch.ones((2, 3, 4)))[0]

add_norm = AddNorm(4, 0.5)
add_norm_out = add_norm(torch.ones((2, 3, 4)), torch.ones((2, 3, 4)))
assert add_norm_out.shape == (2, 3, 4)

X = torch.ones((2, 100, 24))
valid_lens = torch.tensor([3, 2])
encoder_blk = TransformerEncoderBlock(24, 48, 8, 0.5)
encoder_blk.eval()
blk_out = encoder_blk(X, valid_lens)
assert blk_out.shape == X.shape

encoder = TransformerEncoder(200, 24, 48, 8, 2, 0.5)
enc_out = encoder(torch.ones((2, 100), dtype=torch.long), valid_lens)
assert enc_out.shape == (2, 100, 24)
(ffn_out.sum() + blk_out.sum() + (enc_out ** 2).mean()).backward()
outputs = [ffn_out, add_norm_out, blk_out, enc_out, *encoder.attention_weights]
params = [*ffn.parameters(), *encoder_blk.parameters(), *encoder.parameters()]
""",
    ),
    # ------------------------------------------------------------------ 12. optimization
    _cell(
        "momentum_scratch",
        "chapter_optimization/momentum.md: 'Practical Experiments' / 'Implementation from "
        "Scratch' (sgd_momentum, init_momentum_states, train_momentum)",
        CH11,
        """
def init_momentum_states(feature_dim):
    v_w = torch.zeros((feature_dim, 1))
    v_b = torch.zeros(1)
    return (v_w, v_b)

def sgd_momentum(params, states, hyperparams):
    for p, v in zip(params, states):
        with torch.no_grad():
            v[:] = hyperparams['momentum'] * v + p.grad
            p[:] -= hyperparams['lr'] * v
        p.grad.data.zero_()

def train_momentum(lr, momentum, num_epochs=2):
    return train_ch11(sgd_momentum, init_momentum_states(feature_dim),
                      {'lr': lr, 'momentum': momentum}, data_iter,
                      feature_dim, num_epochs)

w, b, losses = train_momentum(0.02, 0.5)
outputs = [w, b, *losses]
params = [w, b]
""",
    ),
    _cell(
        "adam_scratch",
        "chapter_optimization/adam.md: 'Implementation'",
        CH11,
        """
def init_adam_states(feature_dim):
    v_w, v_b = torch.zeros((feature_dim, 1)), torch.zeros(1)
    s_w, s_b = torch.zeros((feature_dim, 1)), torch.zeros(1)
    return ((v_w, s_w), (v_b, s_b))

def adam(params, states, hyperparams):
    beta1, beta2, eps = 0.9, 0.999, 1e-6
    for p, (v, s) in zip(params, states):
        with torch.no_grad():
            v[:] = beta1 * v + (1 - beta1) * p.grad
            s[:] = beta2 * s + (1 - beta2) * torch.square(p.grad)
            v_bias_corr = v / (1 - beta1 ** hyperparams['t'])
            s_bias_corr = s / (1 - beta2 ** hyperparams['t'])
            p[:] -= hyperparams['lr'] * v_bias_corr / (torch.sqrt(s_bias_corr)
                                                       + eps)
        p.grad.data.zero_()
    hyperparams['t'] += 1

w, b, losses = train_ch11(adam, init_adam_states(feature_dim),
                          {'lr': 0.01, 't': 1}, data_iter, feature_dim)
outputs = [w, b, *losses]
params = [w, b]
""",
    ),
    _cell(
        "torch_optim_concise",
        "chapter_optimization/minibatch-sgd.md: 'Concise Implementation'; momentum.md and "
        "adam.md: 'Concise Implementation' (torch.optim.SGD with momentum, torch.optim.Adam)",
        CH11,
        """
trainer = torch.optim.SGD
net_sgd, losses_sgd = train_concise_ch11(trainer, {'lr': 0.005, 'momentum': 0.9}, data_iter,
                                         num_epochs=2)
trainer = torch.optim.Adam
net_adam, losses_adam = train_concise_ch11(trainer, {'lr': 0.01}, data_iter, num_epochs=2)
outputs = [*losses_sgd, *losses_adam, *net_sgd.parameters(), *net_adam.parameters()]
params = [*net_sgd.parameters(), *net_adam.parameters()]
""",
    ),
]

#: by name, for parametrised tests
CELLS_BY_NAME: dict[str, Cell] = {c.name: c for c in CELLS}
