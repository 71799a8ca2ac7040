"""``prefill-check``: is answer prefill lossless on these weights? Measured, answer by answer.

Scores held-out frames of an episode through the product path (the engine builds the queries),
recording every batch; then answers each batch without and with prefill and early stop
(:mod:`..backends.prefill`) and compares the parsed hops one by one. The two calls of a batch
alternate in order and each starts from an empty vision cache, so the time saved is decode.
A negative control (``wrong_head``) prefills ``<score>`` with the sign the reference answers use
least: the check must then fail, or it could not tell a wrong head from a right one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from ..core.engine import EpisodeEngine
from ..core.parsing import parse_score
from ..core.profiles import CheckpointProfile
from ..core.types import Answer, Query
from .episode import EpisodeInputs, EpisodeOptions, _Episode, _goal, engine_config, score_frames

#: Agreement of the parsed hops at or above which prefill is recommended.
RECOMMEND_AT = 0.99


@dataclass(frozen=True)
class Difference:
    """One answer whose parsed hop changed with prefill."""

    index: int
    mode: str
    without: str
    with_prefill: str


@dataclass
class PrefillReport:
    """What the check measured; ``passed`` is the recommendation."""

    head: str
    answers: int = 0
    agreeing: int = 0
    differences: list[Difference] = field(default_factory=list)
    seconds: dict[bool, float] = field(default_factory=lambda: {False: 0.0, True: 0.0})
    new_tokens: dict[bool, float] = field(default_factory=lambda: {False: 0.0, True: 0.0})

    @property
    def agreement(self) -> float:
        return self.agreeing / self.answers if self.answers else 0.0

    @property
    def passed(self) -> bool:
        return self.answers > 0 and self.agreement >= RECOMMEND_AT

    def lines(self) -> list[str]:
        """The report as printed."""
        off, on = self.seconds[False], self.seconds[True]
        saved = 100 * (1 - on / off) if off > 0 else 0.0
        out = [f'head {self.head!r}: {self.agreeing}/{self.answers} parsed hops agree '
               f'({100 * self.agreement:.1f} %; >= {100 * RECOMMEND_AT:.0f} % recommends it)',
               f'model time {off:.2f} s without, {on:.2f} s with prefill ({saved:+.1f} % saved); '
               f'decoded tokens {self.new_tokens[False]:.0f} -> {self.new_tokens[True]:.0f} '
               f'({self.new_tokens[False] / max(self.answers, 1):.1f} -> '
               f'{self.new_tokens[True] / max(self.answers, 1):.1f} per answer)']
        out += [f'  differs: answer {d.index} ({d.mode}): {d.without!r} -> {d.with_prefill!r}'
                for d in self.differences]
        out.append('recommended: model.answer_prefill: on' if self.passed
                   else 'not recommended: keep model.answer_prefill off')
        return out


class _Recorder:
    """The backend as the engine sees it, keeping every batch and its answers, so the timed
    passes answer exactly the engine's batches."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.model_id = backend.model_id
        self.batches: list[tuple[list[Query], list[Answer]]] = []

    def generate(self, queries: Sequence[Query]) -> list[Answer]:
        answers = self.backend.generate(queries)
        self.batches.append((list(queries), answers))
        return answers

    def request_stop(self) -> None:
        self.backend.request_stop()

    def cancel(self) -> None:
        self.backend.cancel()


def record_reference(backend: Any, profile: CheckpointProfile, inputs: EpisodeInputs,
                     frame_interval: int, samples: int) -> _Recorder:
    """Score up to ``samples`` samples of the episode without prefill, recording the batches."""
    backend.set_prefill(False)
    recorder = _Recorder(backend)
    engine = EpisodeEngine(recorder, engine_config(EpisodeOptions(frame_interval=frame_interval)),
                           profile)
    ep = _Episode(inputs)
    try:
        goal, _ = _goal(inputs, ep)
        engine.start(inputs.task, goal, episode_id='prefill-check')
        for _ in islice(score_frames(engine, len(ep.front), ep.views, ep.fps), samples + 1):
            pass                                  # the START sample asks nothing
    finally:
        ep.close()
    return recorder


def minority_sign_head(answers: Sequence[Answer]) -> str:
    """The negative control's head: ``<score>`` and the sign the reference answers use least."""
    signs = [r.hop_raw > 0 for r in map(parse_score, (a.text for a in answers))
             if r.hop_raw not in (None, 0.0)]
    return '<score>-' if sum(signs) * 2 >= len(signs) else '<score>+'


def check_prefill(backend: Any, profile: CheckpointProfile, inputs: EpisodeInputs, *,
                  frame_interval: int = 30, samples: int = 8,
                  wrong_head: bool = False) -> PrefillReport:
    """Compare the parsed hops of the episode's answers without and with prefill.

    The engine's pass only collects the batches. Each batch is then answered both ways, in
    alternating order (without first on even batches) and each call from an empty vision cache,
    so neither side gains from the other's encoded images or from a load change on the machine.
    ``backend`` must offer ``set_prefill`` (every product backend does); it is left off.
    """
    reference = record_reference(backend, profile, inputs, frame_interval, samples)
    answers = [a for _, batch in reference.batches for a in batch]
    head = minority_sign_head(answers) if wrong_head else None
    report = PrefillReport(head='<common head>' if head is None else head)
    index = 0
    try:
        for number, (queries, _) in enumerate(reference.batches):
            got: dict[bool, list[Answer]] = {}
            for on in (False, True) if number % 2 == 0 else (True, False):
                backend.set_prefill(on, head)
                _reset_cache(backend)
                t0 = time.perf_counter()
                got[on] = backend.generate(queries)
                report.seconds[on] += time.perf_counter() - t0
            for query, a, b in zip(queries, got[False], got[True], strict=True):
                report.answers += 1
                report.new_tokens[False] += a.meta.get('new_tokens', 0.0)
                report.new_tokens[True] += b.meta.get('new_tokens', 0.0)
                if parse_score(a.text).hop_raw == parse_score(b.text).hop_raw:
                    report.agreeing += 1
                else:
                    report.differences.append(Difference(index, query.mode.value, a.text,
                                                         b.text))
                index += 1
    finally:
        backend.set_prefill(False)
    return report


def _reset_cache(backend: Any) -> None:
    """Each timed call starts from an empty vision cache (transformers): neither is favoured."""
    reset = getattr(backend, 'reset_cache', None)
    if reset is not None:
        reset()
