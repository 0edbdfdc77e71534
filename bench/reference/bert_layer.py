"""Reference side of bench/bert-layer.ts: one BERT-base layer in PyTorch.

Reads commands on stdin ("fwd" or "fwdbwd"), runs one timed iteration and
prints the milliseconds it took. Written in the style of the reference's
BertLayer (pytorch-transformers 1.0): separate q/k/v projections, additive
mask, exact GeLU, post-LayerNorm with eps 1e-12.
"""
import math
import sys
import time

import torch
from torch import nn


class BertLayer(nn.Module):
    def __init__(self, hidden=768, heads=12, intermediate=3072, dropout=0.1):
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attn_dropout = nn.Dropout(dropout)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def split(self, x):
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, hidden, mask):
        q, k, v = self.split(self.query(hidden)), self.split(self.key(hidden)), self.split(self.value(hidden))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + mask
        probs = self.attn_dropout(torch.softmax(scores, dim=-1))
        context = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        context = context.view(hidden.shape[0], hidden.shape[1], -1)
        attended = self.attn_norm(self.dropout(self.attn_out(context)) + hidden)
        inner = nn.functional.gelu(self.intermediate(attended))
        return self.out_norm(self.dropout(self.output(inner)) + attended)


def main():
    threads, batch, seq = (int(a) for a in sys.argv[1:4])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layer = BertLayer()
    hidden = torch.randn(batch, seq, 768)
    lengths = torch.arange(batch) % seq // 2 + seq // 2
    mask = (torch.arange(seq)[None, :] < lengths[:, None]).float()
    additive = ((1.0 - mask) * -10000.0)[:, None, None, :]
    print("ready", torch.__version__, torch.get_num_threads(), flush=True)
    for line in sys.stdin:
        command = line.strip()
        start = time.perf_counter()
        if command == "fwd":
            layer.eval()
            with torch.no_grad():
                layer(hidden, additive)
        elif command == "fwdbwd":
            layer.train()
            layer.zero_grad()
            layer(hidden, additive).sum().backward()
        else:
            break
        print(f"{(time.perf_counter() - start) * 1000:.3f}", flush=True)


if __name__ == "__main__":
    main()
