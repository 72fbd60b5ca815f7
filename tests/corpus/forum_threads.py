"""Issue 15's corpus: failing or surprising autograd snippets from public threads, each with the
diagnosis gradmagic must give it (``tests/test_forum_threads.py`` runs them in a real IPython
shell and through ``python -m gradmagic``).

Every entry cites the thread it comes from; its code is the thread's, rewritten as small as it
stays true (random inputs seeded, CUDA dropped, models cut to the layers that matter). An
``Expect`` names the diagnosis kind, the tensor it is about (None: not checked) and, per role,
a piece of the code of the line that must carry that role.

How the citations were checked (issue 15, review of the corpus): each of the 64 addresses was
looked up with the stored-thread search (GitHub issues and pull requests; discuss.pytorch.org and
Stack Overflow pages), and the thread read for the problem the snippet shows. All 64 now match,
after the changes below: the snippet is the thread's code cut down (pytorch#9391, #2677, #1339, #18287,
#108618, #68425, #6394, #6990, #92586, #53466, PR #92731, PR #2775, norse#130, sam#45,
SparseLLM#13, the discuss threads 28461, 130964 and 308, Stack Overflow 54754153, ...) or shows
the error and cause the thread reports (an optimizer step between two backward calls,
``round_()`` blocking the gradient, a dead ReLU, a detached hidden state, ``torch.argmax`` in
the loss, a custom Function's backward returning too few gradients or one of the wrong shape).
Four were wrong or could not be backed and were replaced by a thread found the same way about
the same problem: ``frozen_module_forward`` (now ml-jku/helm#3: a forward run under
``torch.no_grad`` gives the module no gradient), ``sgd_rebinds_param`` (a blog post; now
pytorch#74158, ``w = w - lr * w.grad``), ``divide_by_zero_norm`` (pytorch#3264 is
``F.normalize``, since fixed; now neural_renderer#27, dividing by a zero sum) and
``sign_quantizer`` (now pytorch_DoReFaNet#8, "sign() returns zero gradients").
TransformerLens#1160 is a module's full backward hook returning a bare tensor, not a tensor
hook: its snippet now is that. Two were dropped: no thread could be found for them
(``no_grad_update_before_backward``, pytorch#31569; ``fixed_embedding_detached``,
pytorch#17124). The last 14 looked up (GAN-Geometry#4, pytorch#92586, BOP19_CDPN#4, discuss
thread 308, SparseLLM#13, FCHarDNet#61, pytorch#53466, #95110, NeuralBabyTalk#26,
pytorch-tutorial PR #128, StyleCLIP#128, 2d-gaussian-splatting#43, AdderNet#21,
pytorch-image-comp-rnn#4) all match as cited: none was re-cited or dropped. StyleCLIP#128
reports only the error (``FusedLeakyReLUFunctionBackward`` returns, at index 1, the bias, a
gradient of shape [6] for a bias of shape [512]); its snippet makes that error with a bias
gradient summed over the wrong dimension.

>>> len(THREADS) >= 30, len({t.name for t in THREADS}) == len(THREADS)
(True, True)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class Expect:
    """One diagnosis the snippet must get."""

    kind: str
    tensor: Optional[str] = None
    lines: dict = field(default_factory=dict)  # role -> text found in that line's code


@dataclass(frozen=True)
class Thread:
    name: str
    url: str
    cell: str
    expect: tuple  # Expect, ... (every one must be among the report's diagnoses)
    raises: Optional[str] = None  # the exception type the cell raises, if any


def _t(name: str, url: str, cell: str, *expect: Expect, raises: Optional[str] = None) -> Thread:
    return Thread(name, url, cell.strip("\n"), tuple(expect), raises)


THREADS: list = [
    # ----- inplace_saved ---------------------------------------------------------------------
    _t("sigmoid_setitem", "https://github.com/pytorch/pytorch/issues/9391", """
a = torch.tensor([1, 2, 3.], requires_grad=True)
b = a.sigmoid()
b[1] = 2
b.sum().backward()
""", Expect("inplace_saved", "b", {"saved by": "b = a.sigmoid()", "modified in place": "b[1] = 2",
                                    "backward": "b.sum().backward()"}), raises="RuntimeError"),
    _t("sigmoid_clamp_", "https://github.com/wutong16/DistributionBalancedLoss/issues/20", """
torch.manual_seed(0)
logits = torch.randn(4, 3, requires_grad=True)
pred = logits.sigmoid()
pred.clamp_(min=1e-4, max=1 - 1e-4)
loss = -pred.log().mean()
loss.backward()
""", Expect("inplace_saved", "pred", {"saved by": "pred = logits.sigmoid()", "modified in place": "pred.clamp_(",
                                       "backward": "loss.backward()"}), raises="RuntimeError"),
    _t("relu_then_add_identity", "https://github.com/pytorch/vision/issues/807", """
torch.manual_seed(0)
x = torch.randn(5, requires_grad=True)
identity = torch.ones(5)
out = torch.relu(x * 3)
out += identity
out.sum().backward()
""", Expect("inplace_saved", "out", {"saved by": "out = torch.relu(x * 3)", "modified in place": "out += identity",
                                      "backward": "out.sum().backward()"}), raises="RuntimeError"),
    _t("inplace_relu_after_exp", "https://github.com/osmr/imgclsmob/issues/13", """
torch.manual_seed(0)
x = torch.randn(4, requires_grad=True)
act = torch.nn.ReLU(inplace=True)
h = x.exp()
y = act(h)
y.sum().backward()
""", Expect("inplace_saved", None, {"saved by": "h = x.exp()", "modified in place": "y = act(h)",
                                     "backward": "y.sum().backward()"}), raises="RuntimeError"),
    _t("relu_output_modified", "https://github.com/qianyu-dlut/MVANet/issues/2", """
torch.manual_seed(0)
w = torch.randn(3, requires_grad=True)
feat = torch.relu(w)
feat.mul_(0.5)
feat.sum().backward()
""", Expect("inplace_saved", "feat", {"saved by": "feat = torch.relu(w)", "modified in place": "feat.mul_(0.5)",
                                       "backward": "feat.sum().backward()"}), raises="RuntimeError"),
    _t("step_between_two_backwards", "https://github.com/thuml/Anomaly-Transformer/issues/1", """
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
out = model(torch.randn(4, 3))
loss1 = out.mean()
loss2 = (out ** 2).mean()
loss1.backward(retain_graph=True)
opt.step()
loss2.backward()
""", Expect("inplace_saved", "model.1.weight", {"saved by": "out = model(", "modified in place": "opt.step()",
                                             "backward": "loss2.backward()"}), raises="RuntimeError"),
    _t("gan_discriminator_step", "https://github.com/leftthomas/SRGAN/issues/89", """
torch.manual_seed(0)
G = torch.nn.Linear(2, 2)
D = torch.nn.Linear(2, 1)
opt_d = torch.optim.SGD(D.parameters(), lr=0.1)
fake = G(torch.randn(4, 2))
d_out = D(fake)
d_loss = d_out.mean()
g_loss = -d_out.mean() + (d_out ** 2).mean()
d_loss.backward(retain_graph=True)
opt_d.step()
g_loss.backward()
""", Expect("inplace_saved", "D.weight", {"modified in place": "opt_d.step()", "backward": "g_loss.backward()"}),
       raises="RuntimeError"),
    _t("data_hides_a_change_of_a_saved_result", "https://github.com/pytorch/pytorch/issues/6990", """
a = torch.tensor([1, 2, 3.], requires_grad=True)
out = a.sigmoid()
c = out.data
c.zero_()
out.sum().backward()
a.grad
""", Expect("inplace_saved", "out", {"saved by": "out = a.sigmoid()", "modified in place": "c.zero_()",
                                      "backward": "out.sum().backward()"})),
    # ----- freed_graph -------------------------------------------------------------------------
    _t("backward_twice", "https://github.com/TingsongYu/PyTorch-Tutorial-2nd/issues/33", """
x = torch.arange(4.0, requires_grad=True)
y = 2 * torch.dot(x, x)
y.backward()
y.backward()
""", Expect("freed_graph", None, {"freed by": "y.backward()", "backward": "y.backward()"}), raises="RuntimeError"),
    _t("two_losses_one_graph", "https://github.com/Eurus-Holmes/MNMT/issues/7", """
torch.manual_seed(0)
enc = torch.nn.Linear(3, 3)
h = torch.tanh(enc(torch.randn(2, 3)))
loss1 = (h * 2).sum()
loss2 = (h ** 2).sum()
loss1.backward()
loss2.backward()
""", Expect("freed_graph", None, {"freed by": "loss1.backward()", "backward": "loss2.backward()"}),
       raises="RuntimeError"),
    _t("sam_second_pass_reuses_output", "https://github.com/davda54/sam/issues/45", """
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
criterion = torch.nn.CrossEntropyLoss()
images, target = torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 1])
output = model(images)
loss = criterion(output, target)
loss.backward()
opt.step()
criterion(output, target).backward()
""", Expect("freed_graph", "output", {"freed by": "loss.backward()", "reused": "criterion(output, target).backward()",
                                      "backward": "criterion(output, target).backward()"}), raises="RuntimeError"),
    _t("rnn_hidden_not_detached", "https://github.com/MorvanZhou/PyTorch-Tutorial/issues/57", """
torch.manual_seed(0)
W = torch.randn(3, 3, requires_grad=True)
U = torch.randn(3, 3, requires_grad=True)
h_state = torch.zeros(1, 3)
for step in range(2):
    x = torch.randn(1, 3)
    h_state = torch.tanh(x @ W + h_state @ U)
    loss = h_state.pow(2).sum()
    loss.backward()
""", Expect("freed_graph", "h_state", {"freed by": "loss.backward()", "backward": "loss.backward()"}),
       raises="RuntimeError"),
    _t("rnncell_state_reused", "https://github.com/norse/norse/issues/130", """
torch.manual_seed(0)
cell = torch.nn.RNNCell(4, 2)
data = torch.ones(3, 4)
s = cell(data)
loss = s.sum()
loss.backward()
out = cell(data, s)
loss = out.sum()
loss.backward()
""", Expect("freed_graph", "s", {"freed by": "loss.backward()", "reused": "out = cell(data, s)"}),
       raises="RuntimeError"),
    _t("lstm_states_across_batches", "https://github.com/yunjey/pytorch-tutorial/issues/90", """
torch.manual_seed(0)
rnn = torch.nn.RNN(3, 4)
states = torch.zeros(1, 1, 4)
for batch in range(2):
    out, states = rnn(torch.randn(2, 1, 3), states)
    loss = out.sum()
    rnn.zero_grad()
    loss.backward()
""", Expect("freed_graph", "states", {"freed by": "loss.backward()", "backward": "loss.backward()"}),
       raises="RuntimeError"),
    _t("extra_loss_backward_in_shards", "https://github.com/OpenNMT/OpenNMT-py/issues/2153", """
torch.manual_seed(0)
encoder = torch.nn.Linear(3, 3)
memory = encoder(torch.randn(2, 3)).sigmoid()
class_loss = memory.mean()
nmt_loss = (memory * 3).sum()
class_loss.backward()
nmt_loss.backward()
""", Expect("freed_graph", None, {"freed by": "class_loss.backward()", "backward": "nmt_loss.backward()"}),
       raises="RuntimeError"),
    # ----- grad_none ---------------------------------------------------------------------------
    _t("leaf_times_constant", "https://discuss.pytorch.org/t/how-to-define-a-leaf-tensor-in-pytorch-0-4-1/28461", """
torch.manual_seed(0)
w = torch.rand(3, requires_grad=True) * 0.01
loss = (w * 2).sum()
loss.backward()
print(w.grad)
""", Expect("grad_none", "w", {"computed": "w = torch.rand(3, requires_grad=True) * 0.01", "read": "print(w.grad)"})),
    _t("loss_grad_and_input_grad", "https://discuss.pytorch.org/t/loss-grad-is-constant-1/130964", """
torch.manual_seed(0)
model = torch.nn.Linear(1, 1)
x = torch.randn(1, 1)
out = model(x)
loss = out ** 2
loss.backward()
print(loss.grad)
print(x.grad)
""", Expect("grad_none", "loss", {"computed": "loss = out ** 2", "read": "print(loss.grad)"}),
       Expect("grad_none", "x", {"created": "x = torch.randn(1, 1)", "read": "print(x.grad)"})),
    _t("argmax_between_modules", "https://github.com/pytorch/pytorch/issues/1339", """
torch.manual_seed(0)
first_model = torch.nn.Linear(3, 4)
second_model = torch.nn.Linear(1, 2)
y_p = first_model(torch.randn(5, 3))
y_p = torch.max(y_p, 1)[1]
loss = second_model(y_p.float().unsqueeze(1)).sum()
loss.backward()
for param in first_model.parameters():
    print(param.grad.data)
""", Expect("grad_none", "first_model.weight", {"cut by": "y_p = torch.max(y_p, 1)[1]"}), raises="AttributeError"),
    _t("detached_memory_loss", "https://github.com/haowang1992/DSN/issues/2", """
torch.manual_seed(0)
memory = torch.randn(3, requires_grad=True)
encoder = torch.randn(3, requires_grad=True)
loss_memory = (memory * 2).detach().sum()
loss = (encoder ** 2).sum() + loss_memory
loss.backward()
print(memory.grad)
""", Expect("grad_none", "memory", {"cut by": "loss_memory = (memory * 2).detach().sum()",
                                     "read": "print(memory.grad)"})),
    _t("frozen_module_forward", "https://github.com/ml-jku/helm/issues/3", """
class Frozen(torch.nn.Module):
    def __init__(self, frozen_module):
        super().__init__()
        self.frozen_module = frozen_module

    def forward(self, x):
        with torch.no_grad():
            return self.frozen_module(x)

torch.manual_seed(0)
extractor = Frozen(torch.nn.Linear(3, 2))
head = torch.nn.Linear(2, 1)
loss = head(extractor(torch.randn(4, 3))).sum()
loss.backward()
print(extractor.frozen_module.weight.grad)
""", Expect("grad_none", "extractor.frozen_module.weight",
            {"gradients off": "with torch.no_grad():", "read": "print(extractor.frozen_module.weight.grad)"})),
    _t("zero_grad_sets_none", "https://github.com/pytorch/pytorch/pull/92731", """
torch.manual_seed(0)
module = torch.nn.Linear(5, 5)
i = torch.randn(2, 5, requires_grad=True)
module(i).sum().backward()
module.zero_grad()
module.weight.grad.data
""", Expect("grad_none", "module.weight", {"set to None": "module.zero_grad()", "read": "module.weight.grad.data"}),
       raises="AttributeError"),
    _t("accumulate_after_zero_grad", "https://github.com/pytorch/examples/pull/1172", """
torch.manual_seed(0)
w = torch.nn.Parameter(torch.randn(3))
opt = torch.optim.SGD([w], lr=0.1)
(w * 2).sum().backward()
opt.zero_grad()
acc = w.grad + 1
""", Expect("grad_none", "w", {"set to None": "opt.zero_grad()", "read": "acc = w.grad + 1"}), raises="TypeError"),
    _t("item_rewrapped_loss", "https://github.com/Ugenteraan/Deep_Hierarchical_Classification/issues/6", """
torch.manual_seed(0)
w = torch.randn(3, requires_grad=True)
pred = w * 2
dloss = torch.tensor(pred.max().item(), requires_grad=True)
loss = dloss * 3
loss.backward()
print(w.grad)
""", Expect("grad_none", "w", {"cut by": "dloss = torch.tensor(pred.max().item(), requires_grad=True)",
                                "read": "print(w.grad)"})),
    _t("numpy_in_loss", "https://github.com/delira-dev/delira/issues/40", """
import numpy as np
torch.manual_seed(0)
w = torch.randn(3, requires_grad=True)
pred = w * 2
err = torch.from_numpy(np.abs(pred.detach().numpy())).requires_grad_()
err.sum().backward()
print(w.grad)
""", Expect("grad_none", "w", {"cut by": "err = torch.from_numpy(", "read": "print(w.grad)"})),
    _t("sgd_rebinds_param", "https://github.com/pytorch/pytorch/issues/74158", """
w = torch.tensor([2.0, -3.4], requires_grad=True)
X = torch.ones(4, 2)
l = ((X @ w - 1) ** 2).sum()
l.backward()
for param in [w]:
    param = param - 0.03 * param.grad
    param.grad.zero_()
""", Expect("grad_none", "param", {"computed": "param = param - 0.03 * param.grad", "read": "param.grad.zero_()"}),
       raises="AttributeError"),
    _t("zero_before_first_backward", "https://github.com/jcjohnson/pytorch-examples/pull/4", """
torch.manual_seed(0)
w1 = torch.randn(3, 2, requires_grad=True)
x = torch.randn(4, 3)
for t in range(2):
    loss = (x @ w1).pow(2).sum()
    w1.grad.data.zero_()
    loss.backward()
""", Expect("grad_none", "w1", {"created": "w1 = torch.randn(3, 2, requires_grad=True)",
                                 "read": "w1.grad.data.zero_()"}), raises="AttributeError"),
    _t("conv_output_grad", "https://github.com/pytorch/pytorch/issues/2677", """
torch.manual_seed(0)
x = torch.rand(8, 1, 5, 5, requires_grad=True)
conv = torch.nn.Conv2d(1, 1, 3)
y = conv(x)
final = torch.sum(y)
final.backward()
print('y.grad', y.grad)
""", Expect("grad_none", "y", {"computed": "y = conv(x)", "read": "print('y.grad', y.grad)"})),
    _t("data_is_not_tracked", "https://github.com/pytorch/pytorch/issues/6990", """
a = torch.tensor([1, 2, 3.], requires_grad=True)
b = a.data
loss = (a * b).sum()
loss.backward()
print(b.grad)
""", Expect("grad_none", "b", {"read": "print(b.grad)"})),
    _t("input_grad_without_requires_grad", "https://github.com/fredzzhang/pvic/issues/55", """
torch.manual_seed(0)
model = torch.nn.Linear(3, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
inputs = torch.rand(2, 3)
loss = model(inputs).sum()
optimizer.zero_grad(set_to_none=True)
loss.backward()
grad = inputs.grad
""", Expect("grad_none", "inputs", {"created": "inputs = torch.rand(2, 3)", "read": "grad = inputs.grad"})),
    # ----- nonfinite_grad ----------------------------------------------------------------------
    _t("sqrt_of_squares_at_zero", "https://github.com/pytorch/pytorch/pull/2775", """
x = torch.zeros(3, requires_grad=True)
x.pow(2).sum().sqrt().backward()
x.grad
""", Expect("nonfinite_grad", "x", {"computed": "x.pow(2).sum().sqrt().backward()"})),
    _t("sqrt_pow_chain", "https://github.com/pytorch/pytorch/issues/6394", """
x = torch.tensor([1.0], requires_grad=True)
y = torch.sqrt(torch.pow(x - 1, 2))
y.backward()
x.grad
""", Expect("nonfinite_grad", "x", {"computed": "y = torch.sqrt(torch.pow(x - 1, 2))", "backward": "y.backward()"})),
    _t("where_exp_overflow", "https://github.com/pytorch/pytorch/issues/68425", """
a = torch.tensor(100., requires_grad=True)
b = torch.where(a <= 0, torch.exp(a), 1 + a)
b.backward()
a.grad
""", Expect("nonfinite_grad", "a", {"computed": "b = torch.where(a <= 0, torch.exp(a), 1 + a)"})),
    _t("where_log2_at_zero", "https://github.com/pytorch/pytorch/issues/108618", """
x1 = torch.tensor([0.0, 2.0, 3.0], requires_grad=True)
y1 = torch.where(x1 > 2, torch.log2(x1), 2 * x1)
y1.sum().backward()
x1.grad
""", Expect("nonfinite_grad", "x1", {"computed": "y1 = torch.where(x1 > 2, torch.log2(x1), 2 * x1)"})),
    _t("where_cos_at_inf", "https://github.com/pytorch/pytorch/issues/18287", """
import math
x = torch.tensor([0.0, math.inf], requires_grad=True)
y = torch.where(x < 1.0, torch.cos(x), torch.zeros_like(x))
y.sum().backward()
x.grad
""", Expect("nonfinite_grad", "x", {"computed": "y = torch.where(x < 1.0, torch.cos(x), torch.zeros_like(x))"})),
    _t("log_of_zero_probability", "https://github.com/summerlvsong/Aggregation-Cross-Entropy/issues/2", """
probs = torch.tensor([0.0, 0.5, 0.5], requires_grad=True)
target = torch.tensor([0.0, 1.0, 0.0])
loss = -(target * torch.log(probs)).sum()
loss.backward()
probs.grad
""", Expect("nonfinite_grad", "probs", {"computed": "loss = -(target * torch.log(probs)).sum()",
                                         "backward": "loss.backward()"})),
    _t("divide_by_zero_norm", "https://github.com/daniilidis-group/neural_renderer/pull/27", """
a = torch.tensor([[0.0, 0.0, 0.0]], requires_grad=True)
b = a / a.sum()
b.sum().backward()
a.grad
""", Expect("nonfinite_grad", "a", {"computed": "b = a / a.sum()"})),
    # ----- zero_grad ---------------------------------------------------------------------------
    _t("round_blocks_gradient", "https://github.com/hahnyuan/PTQ4ViT/issues/6", """
w = torch.tensor([0.3, 1.7, -0.6], requires_grad=True)
scale = 4.0
q = torch.round(w * scale) / scale
q.sum().backward()
w.grad
""", Expect("zero_grad", "w", {"computed": "q = torch.round(w * scale) / scale", "backward": "q.sum().backward()"})),
    _t("sign_quantizer", "https://github.com/zzzxxxttt/pytorch_DoReFaNet/issues/8", """
torch.manual_seed(0)
weight = torch.randn(4, requires_grad=True)
out = torch.sign(weight)
(out * torch.arange(4.0)).sum().backward()
weight.grad
""", Expect("zero_grad", "weight", {"computed": "out = torch.sign(weight)"})),
    _t("zero_init_relu", "https://github.com/lucidrains/deep-cross-attention/issues/2", """
torch.manual_seed(0)
linear = torch.nn.Linear(4, 2, bias=False)
torch.nn.init.zeros_(linear.weight)
y = torch.relu(linear(torch.randn(3, 4)))
y.sum().backward()
linear.weight.grad
""", Expect("zero_grad", "linear.weight", {"computed": "y = torch.relu(linear(torch.randn(3, 4)))"})),
    _t("relu_predicts_only_zeros", "https://github.com/jvargasmu/population_estimation/issues/68", """
torch.manual_seed(0)
head = torch.nn.Linear(3, 1)
with torch.no_grad():
    head.bias.fill_(-10.0)
pred = torch.relu(head(torch.rand(6, 3)))
loss = ((pred - 1.0) ** 2).mean()
loss.backward()
head.weight.grad
""", Expect("zero_grad", "head.weight", {"computed": "pred = torch.relu(head(torch.rand(6, 3)))",
                                          "backward": "loss.backward()"})),
    # ----- nonscalar_backward -------------------------------------------------------------------
    _t("loss_per_replica", "https://github.com/WisconsinAIVision/MaskPoint/issues/7", """
torch.manual_seed(0)
pred = torch.randn(2, 5, requires_grad=True)
loss = ((pred - 1) ** 2).mean(dim=1)
loss.backward()
""", Expect("nonscalar_backward", "loss", {"computed": "loss = ((pred - 1) ** 2).mean(dim=1)",
                                           "backward": "loss.backward()"}), raises="RuntimeError"),
    _t("autograd_grad_of_a_vector", "https://stackoverflow.com/questions/54754153/autograd-grad-for-tensor-in-pytorch", """
x = torch.ones(2, 2, requires_grad=True)
v = x + 2
y = v ** 2
dy_dx = torch.autograd.grad(outputs=y, inputs=x)
""", Expect("nonscalar_backward", "y", {"computed": "y = v ** 2", "backward": "torch.autograd.grad(outputs=y"}),
       raises="RuntimeError"),
    _t("rank_loss_per_sample", "https://github.com/dillondavis/RecurrentAttentionConvolutionalNeuralNetwork/issues/4", """
torch.manual_seed(0)
scores1 = torch.rand(4, 3, requires_grad=True)
scores2 = torch.rand(4, 3, requires_grad=True)
target = torch.tensor([0, 2, 1, 0])
p1 = torch.softmax(scores1, dim=1).gather(1, target.view(-1, 1))
p2 = torch.softmax(scores2, dim=1).gather(1, target.view(-1, 1))
loss = torch.relu(p1 - p2 + 0.05)
loss.backward()
""", Expect("nonscalar_backward", "loss", {"computed": "loss = torch.relu(p1 - p2 + 0.05)",
                                           "backward": "loss.backward()"}),
       raises="RuntimeError"),
    _t("activation_gradient_wrt_latent", "https://github.com/Animadversio/GAN-Geometry/issues/4", """
torch.manual_seed(0)
z = torch.randn(3, 8, requires_grad=True)
G = torch.nn.Linear(8, 5)
activs = torch.tanh(G(z))
grad_z = torch.autograd.grad(activs, z)[0]
""", Expect("nonscalar_backward", "activs", {"computed": "activs = torch.tanh(G(z))",
                                             "backward": "grad_z = torch.autograd.grad(activs, z)[0]"}),
       raises="RuntimeError"),
    # ----- no_grad_fn ---------------------------------------------------------------------------
    _t("detach_inside_function", "https://github.com/pytorch/pytorch/issues/92586", """
torch.manual_seed(0)
t = torch.randn(5, requires_grad=True)
def func(t):
    t_copy = t.detach()
    return t_copy
func(t).sum().backward()
""", Expect("no_grad_fn", None, {"cut by": "t_copy = t.detach()", "backward": "func(t).sum().backward()"}),
       raises="RuntimeError"),
    _t("loss_through_argmax", "https://github.com/LZGMatrix/BOP19_CDPN_2019ICCV/issues/4", """
torch.manual_seed(0)
net = torch.nn.Linear(4, 8)
feats = net(torch.randn(5, 4))
coords = torch.argmax(feats, dim=1)
coords = 2.0 * coords.float() / 7.0 - 1.0
loss = (coords - 0.5).pow(2).mean()
loss.backward()
""", Expect("no_grad_fn", "loss", {"cut by": "coords = torch.argmax(feats, dim=1)", "backward": "loss.backward()"}),
       raises="RuntimeError"),
    _t("forward_under_no_grad", "https://github.com/Lightning-AI/pytorch-lightning/issues/19517", """
torch.manual_seed(0)
layer = torch.nn.Linear(4, 1)
x = torch.randn(3, 4)
with torch.no_grad():
    pred = layer(x)
loss = ((pred - 1) ** 2).mean()
loss.backward()
""", Expect("no_grad_fn", "loss", {"gradients off": "with torch.no_grad():",
                                   "computed": "loss = ((pred - 1) ** 2).mean()", "backward": "loss.backward()"}),
       raises="RuntimeError"),
    _t("weights_without_requires_grad", "https://github.com/weizheliu/People-Flows/issues/7", """
torch.manual_seed(0)
w = torch.randn(3)
x = torch.randn(4, 3)
loss = ((x @ w - 1) ** 2).mean()
loss.backward()
""", Expect("no_grad_fn", "loss", {"created": "w = torch.randn(3)", "backward": "loss.backward()"}),
       raises="RuntimeError"),
    # ----- leaf_inplace -------------------------------------------------------------------------
    _t("plus_equals_on_a_leaf", "https://discuss.pytorch.org/t/leaf-variable-was-used-in-an-inplace-operation/308", """
x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
y = x + 1
x += 1
""", Expect("leaf_inplace", "x", {"created": "x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)",
                                 "in-place op": "x += 1"}), raises="RuntimeError"),
    _t("manual_sgd_add_", "https://github.com/pytorch/examples/pull/779", """
torch.manual_seed(0)
model = torch.nn.Linear(3, 2)
lr = 0.1
loss = model(torch.randn(4, 3)).pow(2).mean()
loss.backward()
for p in model.parameters():
    p.add_(p.grad, alpha=-lr)
""", Expect("leaf_inplace", None, {"in-place op": "p.add_(p.grad, alpha=-lr)"}), raises="RuntimeError"),
    _t("manual_update_minus_equals", "https://github.com/BaiTheBest/SparseLLM/issues/13", """
torch.manual_seed(0)
s_batch = torch.randn(4, requires_grad=True)
s_learning_rate = 0.01
loss_s = (s_batch ** 2).sum()
loss_s.backward()
s_batch -= s_learning_rate * s_batch.grad
""", Expect("leaf_inplace", "s_batch", {"created": "s_batch = torch.randn(4, requires_grad=True)",
                                       "in-place op": "s_batch -= s_learning_rate * s_batch.grad"}),
       raises="RuntimeError"),
    _t("scale_one_weight_in_place", "https://github.com/fastai/fastbook/pull/471", """
torch.manual_seed(0)
weights = torch.randn(5, requires_grad=True)
weights[0] *= 1.0001
""", Expect("leaf_inplace", "weights", {"created": "weights = torch.randn(5, requires_grad=True)",
                                       "in-place op": "weights[0] *= 1.0001"}), raises="RuntimeError"),
    _t("copy_into_conv_weight", "https://github.com/PingoLH/FCHarDNet/issues/61", """
torch.manual_seed(0)
cconv = torch.nn.Conv2d(2, 2, 3)
W = torch.randn(2, 2, 3, 3)
cconv.weight[:, :, :, :] = W
""", Expect("leaf_inplace", "cconv.weight", {"in-place op": "cconv.weight[:, :, :, :] = W"}), raises="RuntimeError"),
    # ----- int_requires_grad --------------------------------------------------------------------
    _t("integer_tensor_requires_grad", "https://github.com/pytorch/pytorch/issues/53466", """
x = torch.tensor([1], requires_grad=True)
""", Expect("int_requires_grad", "x", {"created": "x = torch.tensor([1], requires_grad=True)"}), raises="RuntimeError"),
    _t("max_indices_require_grad", "https://github.com/pytorch/pytorch/issues/95110", """
torch.manual_seed(0)
scores = torch.randn(3, 4)
values, indices = torch.max(scores, dim=1)
indices.requires_grad = True
""", Expect("int_requires_grad", "indices", {"created": "values, indices = torch.max(scores, dim=1)",
                                            "requires grad": "indices.requires_grad = True"}), raises="RuntimeError"),
    _t("parameter_from_integer_mask", "https://github.com/jiasenlu/NeuralBabyTalk/issues/26", """
fg_mask = torch.tensor([0, 1, 1, 0])
mask = torch.nn.Parameter(fg_mask)
""", Expect("int_requires_grad", "fg_mask", {"created": "fg_mask = torch.tensor([0, 1, 1, 0])"}),
       raises="RuntimeError"),
    _t("tutorial_integer_scalars", "https://github.com/yunjey/pytorch-tutorial/pull/128", """
x = torch.tensor(1, requires_grad=True)
w = torch.tensor(2, requires_grad=True)
y = w * x
""", Expect("int_requires_grad", "x", {"created": "x = torch.tensor(1, requires_grad=True)"}), raises="RuntimeError"),
    # ----- invalid_gradient ---------------------------------------------------------------------
    _t("function_bias_gradient_not_summed", "https://github.com/orpatashnik/StyleCLIP/issues/128", """
class FusedBiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bias):
        return torch.nn.functional.leaky_relu(x + bias, 0.2)

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out, grad_out.sum(1)

torch.manual_seed(0)
x = torch.randn(6, 4, requires_grad=True)
bias = torch.zeros(4, requires_grad=True)
out = FusedBiasAct.apply(x, bias)
out.sum().backward()
""", Expect("invalid_gradient", "out", {"applied": "out = FusedBiasAct.apply(x, bias)",
                                      "backward defined": "def backward(ctx, grad_out):",
                                      "backward": "out.sum().backward()"}), raises="RuntimeError"),
    _t("function_gradient_of_wrong_width", "https://github.com/hbb1/2d-gaussian-splatting/issues/43", """
class Rasterize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, scales):
        return means.sum(1) * scales.sum(1)

    @staticmethod
    def backward(ctx, grad):
        return grad[:, None].expand(-1, 3), grad[:, None].expand(-1, 2)

means = torch.ones(5, 3, requires_grad=True)
scales = torch.ones(5, 3, requires_grad=True)
img = Rasterize.apply(means, scales)
img.sum().backward()
""", Expect("invalid_gradient", "img", {"applied": "img = Rasterize.apply(means, scales)",
                                      "backward defined": "def backward(ctx, grad):"}), raises="RuntimeError"),
    _t("function_returns_one_gradient_of_two", "https://github.com/huawei-noah/AdderNet/issues/21", """
class Adder(torch.autograd.Function):
    @staticmethod
    def forward(ctx, W, X):
        ctx.save_for_backward(W, X)
        return -(X[:, None, :] - W[None]).abs().sum(2)

    @staticmethod
    def backward(ctx, grad_output):
        W, X = ctx.saved_tensors
        grad_W = ((X[:, None, :] - W[None]) * grad_output[:, :, None]).sum(0)
        return grad_W

torch.manual_seed(0)
W = torch.randn(3, 4, requires_grad=True)
X = torch.randn(2, 4, requires_grad=True)
out = Adder.apply(W, X)
out.sum().backward()
""", Expect("invalid_gradient", "out", {"applied": "out = Adder.apply(W, X)",
                                      "backward defined": "def backward(ctx, grad_output):"}), raises="RuntimeError"),
    _t("sign_function_flag_argument", "https://github.com/1zb/pytorch-image-comp-rnn/issues/4", """
class Sign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, is_training):
        return x.sign()

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output

torch.manual_seed(0)
x = torch.randn(4, requires_grad=True)
code = Sign.apply(x * 2, True)
code.sum().backward()
""", Expect("invalid_gradient", "code", {"applied": "code = Sign.apply(x * 2, True)",
                                       "backward defined": "def backward(ctx, grad_output):"}), raises="RuntimeError"),
    _t("full_hook_returns_a_bare_tensor", "https://github.com/TransformerLensOrg/TransformerLens/issues/1160", """
class HookPoint(torch.nn.Module):
    def forward(self, x):
        return x

torch.manual_seed(0)
embed = torch.nn.Linear(4, 8)
hook_resid_post = HookPoint()
def simple_hook(module, grad_input, grad_output):
    return grad_output[0]
h = hook_resid_post.register_full_backward_hook(simple_hook)
logits = hook_resid_post(embed(torch.randn(1, 3, 4)))
loss = logits[0, -1, 0]
loss.backward()
""", Expect("invalid_gradient", None, {"hook defined": "def simple_hook(module, grad_input, grad_output):",
                                     "module called": "logits = hook_resid_post(embed(torch.randn(1, 3, 4)))",
                                     "backward": "loss.backward()"}), raises="RuntimeError"),
    _t("old_hook_feedback_alignment", "https://github.com/jordan-g/PyTorch-Feedback-Alignment-Layers/issues/1", """
torch.manual_seed(0)
fc = torch.nn.Linear(4, 3, bias=False)
fc.weight_fa = torch.randn(3, 4)
def linear_fa_backward_hook(module, grad_input, grad_output):
    grad_input_fa = grad_output[0].mm(module.weight_fa)
    return (grad_input[0], grad_input_fa) + grad_input[2:]
h = fc.register_backward_hook(linear_fa_backward_hook)
x = torch.randn(2, 4, requires_grad=True)
fc(x).sum().backward()
""", Expect("invalid_gradient", None, {"hook defined": "def linear_fa_backward_hook(module, grad_input, grad_output):",
                                     "module called": "fc(x).sum().backward()"}), raises="RuntimeError"),
    _t("old_hook_returns_too_few", "https://github.com/TransformerLensOrg/TransformerLens/issues/672", """
class Residual(torch.nn.Module):
    def forward(self, resid_mid, mlp_out):
        return resid_mid + mlp_out

torch.manual_seed(0)
resid_post = Residual()
def bwd_hook(module, grad_input, grad_output):
    return (grad_output[0],)
h = resid_post.register_backward_hook(bwd_hook)
a = torch.randn(2, 4, requires_grad=True)
b = torch.randn(2, 4, requires_grad=True)
resid_post(a, b).sum().backward()
""", Expect("invalid_gradient", None, {"hook defined": "def bwd_hook(module, grad_input, grad_output):",
                                     "module called": "resid_post(a, b).sum().backward()"}), raises="RuntimeError"),
]
