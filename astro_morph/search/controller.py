"""The ENAS controller: an LSTM that emits one choice per decision, trained with REINFORCE."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["Controller", "reward"]


def reward(accuracy: float, flops: float, target: float = 20e6, w: float = -0.07,
           w_below: float | None = None) -> float:
    """Paper Eq. 1: ``ACC(m) * (FLOPs(m) / T) ** w``.

    The paper prints w = 0.07, but a positive exponent *rewards* FLOPs above the target;
    MnasNet's soft constraint (which Eq. 1 comes from) uses w = -0.07, so that is the
    default. ``w_below`` (MnasNet's alpha) applies instead when FLOPs <= T; ``None`` uses
    ``w`` on both sides, exactly Eq. 1.
    """
    if flops <= 0 or target <= 0:
        raise ValueError("FLOPs and target must be positive")
    exponent = w if (w_below is None or flops > target) else w_below
    return float(accuracy) * (flops / target) ** exponent


class Controller(nn.Module):
    """LSTM policy over a sequence of categorical decisions of sizes ``sizes``.

    Each step feeds the embedding of the previous choice (a learned start token first) and
    reads that decision's logits from its own linear head, as in Pham et al. (2018).
    """

    def __init__(self, sizes: list[int], hidden: int = 64, temperature: float = 5.0,
                 tanh_constant: float = 2.5) -> None:
        super().__init__()
        self.sizes = list(sizes)
        self.hidden = hidden
        self.temperature, self.tanh_constant = temperature, tanh_constant
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.embed = nn.ModuleList(nn.Embedding(n, hidden) for n in self.sizes)
        self.cell = nn.LSTMCell(hidden, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in self.sizes)
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)

    def _logits(self, h: torch.Tensor, i: int) -> torch.Tensor:
        # ENAS's temperature and tanh squashing keep early sampling exploratory.
        return self.tanh_constant * torch.tanh(self.heads[i](h) / self.temperature)

    def sample(self, generator: torch.Generator | None = None
               ) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """One genotype, its summed log-probability and summed entropy (with grad)."""
        h = torch.zeros(1, self.hidden)
        c = torch.zeros(1, self.hidden)
        x = self.start
        choices, logp, ent = [], [], []
        for i in range(len(self.sizes)):
            h, c = self.cell(x, (h, c))
            dist = torch.distributions.Categorical(logits=self._logits(h, i))
            a = int(torch.multinomial(dist.probs.detach(), 1, generator=generator))
            choices.append(a)
            logp.append(dist.log_prob(torch.tensor([a])))
            ent.append(dist.entropy())
            x = self.embed[i](torch.tensor([a]))
        return choices, torch.cat(logp).sum(), torch.cat(ent).sum()

    def max_entropy(self) -> float:
        """Entropy of the uniform policy (for progress display)."""
        return sum(math.log(n) for n in self.sizes)
