"""The model of bench_throughput.py in PyTorch eager, for a comparison on the same machine: pre-LN
blocks, fused q/k/v and linear layers without biases, tanh GELU MLP, learned positions, tied
embedding and readout, causal scaled_dot_product_attention, AdamW (weight decay on matrices)
after global-norm clipping; fp32. Same arguments and output as bench_throughput.py; MFU uses
scalinglab's FLOP convention over --peak (FLOP/s; bench_throughput_compare.py reports both
sides over scalinglab's measured CPU peak).

PyTorch is not a dependency of scalinglab; run this from a separate environment, e.g.
    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy
    /tmp/torchvenv/bin/python experiments/bench_throughput_torch.py --json
"""

import os
import sys
import time

import torch
import torch.nn.functional as F
from bench_harness import D_HEAD, parse_args, report, serve, warmed_up
from torch import nn

VOCAB, MLP_RATIO = 256, 4


class Block(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.n_heads = d // D_HEAD
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.out = nn.Linear(d, d, bias=False)
        self.up = nn.Linear(d, MLP_RATIO * d, bias=False)
        self.down = nn.Linear(MLP_RATIO * d, d, bias=False)

    def forward(self, x):
        B, L, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, L, 3, self.n_heads, D_HEAD).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(att.transpose(1, 2).reshape(B, L, D))
        return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))


class LM(nn.Module):
    def __init__(self, n_layers: int, d: int, seq_len: int):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d)
        self.pos = nn.Parameter(torch.randn(seq_len, d) * 0.01)
        self.blocks = nn.ModuleList(Block(d) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, tokens):
        x = self.embed(tokens) + self.pos[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x) @ self.embed.weight.T


def flops_per_token(n_layers: int, d: int, seq_len: int) -> int:
    """scalinglab.model.counts.flops_per_token: 6 (N + d vocab) + 12 n_layers seq_len d."""
    N = n_layers * (4 * d * d + 2 * d * MLP_RATIO * d + 4 * d) + 2 * d
    return 6 * (N + d * VOCAB) + 12 * n_layers * seq_len * d


def make_stepper(n_layers: int, d: int, batch_size: int, seq_len: int):
    """A function that trains one step on random bytes and returns its wall time."""
    torch.manual_seed(0)
    model = LM(n_layers, d, seq_len)
    matrices = [p for p in model.parameters() if p.dim() == 2 and p is not model.pos and p is not model.embed.weight]
    others = [p for p in model.parameters() if all(p is not m for m in matrices)]
    opt = torch.optim.AdamW([{"params": matrices, "weight_decay": 0.1}, {"params": others, "weight_decay": 0.0}], lr=1e-3)
    windows = torch.randint(0, VOCAB, (batch_size, seq_len + 1))
    inputs, targets = windows[:, :-1], windows[:, 1:]

    def one_step() -> float:
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()
        return time.perf_counter() - t0

    return warmed_up(one_step)


def setup(n_layers: int, d_model: int, args):
    return make_stepper(n_layers, d_model, args.batch_size, args.seq_len), flops_per_token(n_layers, d_model, args.seq_len)


def main(argv=None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv, peak_flag=True)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    peak = args.peak  # bench_throughput_compare.py reports both sides over scalinglab's measured peak
    if args.serve:
        return serve(setup, args, peak)
    if not args.json:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, peak {(peak or 0) / 1e9:.1f} GFLOP/s", file=sys.stderr)
    report(setup, args, peak)


if __name__ == "__main__":
    main()
