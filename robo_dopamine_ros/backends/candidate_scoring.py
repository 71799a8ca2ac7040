"""Teacher-forced scoring of candidate answers on a transformers model, the prompt computed once.

The prompt (with the answer head) runs once per query; its key/value cache is then repeated for
the candidates (:data:`..core.confidence.CANDIDATE_HOPS`), which run together in one forward of
a few tokens each. A candidate's score is the log-probability of its tokens up to and including
the first token after the number (the number and where it ends: ``+4.0`` vs ``+40.0``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.confidence import CANDIDATE_HOPS, ScoreDistribution, candidate_answers
from ..core.errors import ModelLoadError
from .prefill import first_after_number

if TYPE_CHECKING:
    import torch


def candidate_ids(tokenizer: Any, head: list[int]) -> list[list[int]]:
    """Each candidate's token ids after ``head``, through the first token after its number.

    Raises:
        ModelLoadError: A candidate does not start with ``head`` (a tokenizer that splits the
            answers unlike the head: confidence cannot be scored with it).
    """
    out = []
    for text in candidate_answers():
        ids = tokenizer.encode(text, add_special_tokens=False)
        after = first_after_number([tokenizer.decode([i]) for i in ids])
        if ids[:len(head)] != head or after is None or after < len(head):
            raise ModelLoadError(f'the tokenizer splits {text!r} unlike the answer head '
                                 f'{tokenizer.decode(head)!r}; confidence cannot be scored')
        out.append(ids[len(head):after + 1])
    return out


def score_candidates(model: Any, enc: Any, candidates: list[list[int]],
                     pad_id: int) -> torch.Tensor:
    """Log-probability of every candidate after every prompt of ``enc``: a (batch, K) tensor.

    ``enc`` is the batch on the model's device, left padded, ending with the answer head.
    """
    import torch

    out = model(**enc, use_cache=True, return_dict=True)
    first = out.logits[:, -1].float().log_softmax(-1)                     # (B, V)
    batch, prompt_len = enc['input_ids'].shape
    k, width = len(candidates), max(map(len, candidates))
    device = enc['input_ids'].device
    ids = torch.full((k, width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((k, width), dtype=enc['attention_mask'].dtype, device=device)
    for row, cand in enumerate(candidates):
        ids[row, :len(cand)] = torch.tensor(cand, device=device)
        mask[row, :len(cand)] = 1
    cache = out.past_key_values
    cache.batch_repeat_interleave(k)                                      # row b*k + j
    # M-RoPE text positions after the prompt: its real tokens (left padding excluded) plus
    # the offset of its images, the ``rope_deltas`` the prompt's forward stored.
    steps = torch.arange(prompt_len, prompt_len + width, device=device)
    start = enc['attention_mask'].sum(-1, keepdim=True) + model.model.rope_deltas
    position = (start.repeat_interleave(k, 0) + steps[None] - prompt_len).unsqueeze(0)
    rest = model(input_ids=ids.repeat(batch, 1),
                 attention_mask=torch.cat([enc['attention_mask'].repeat_interleave(k, 0),
                                           mask.repeat(batch, 1)], dim=1),
                 position_ids=position.expand(3, -1, -1), past_key_values=cache,
                 use_cache=True, return_dict=True, cache_position=steps)
    logp = rest.logits.float().log_softmax(-1).view(batch, k, width, -1)
    # token j of a candidate is predicted at position j - 1 (the first one by ``first``)
    nxt = ids[:, 1:].expand(batch, k, width - 1).unsqueeze(-1)
    later = logp[:, :, :-1].gather(-1, nxt).squeeze(-1) * mask[:, 1:].to(logp.dtype)
    return first[:, ids[:, 0]] + later.sum(-1)


def distributions(logprobs: torch.Tensor) -> list[ScoreDistribution]:
    """One :class:`ScoreDistribution` per row of :func:`score_candidates`."""
    return [ScoreDistribution.from_logprobs(CANDIDATE_HOPS, row) for row in logprobs.tolist()]
