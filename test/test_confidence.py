"""The GRM's confidence: a distribution over the score by teacher-forced scoring of candidate
answers. The arithmetic of the distribution; the transformers backend's KV-shared scoring against
a plain full forward of prompt + head + candidate, on both committed demo GRMs, for a left-padded
batch (the padded row's rotary positions are where this goes wrong), with the answers unchanged;
and its way out: engine result, records, RL info, the Confidence message."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from robo_dopamine_ros.core.confidence import CANDIDATE_HOPS, ScoreDistribution, candidate_answers
from robo_dopamine_ros.core.parsing import ParseStatus, parse_score
from robo_dopamine_ros.core.profiles import DEMO_GRM, DEMO_GRM_QWEN3

ROOT = Path(__file__).resolve().parents[1] / 'robo_dopamine_ros' / 'models'


def test_confidence_candidates_are_the_training_format_from_minus_to_plus_100() -> None:
    answers = candidate_answers()
    assert len(answers) == len(CANDIDATE_HOPS) == 21
    assert answers[0] == '<score>-100.0%</score>' and answers[-1] == '<score>+100.0%</score>'
    assert [parse_score(a).hop for a in answers] == pytest.approx(list(CANDIDATE_HOPS))
    assert all(parse_score(a).status is ParseStatus.OK for a in answers)


def test_confidence_distribution_arithmetic() -> None:
    sure = ScoreDistribution.from_logprobs((-0.5, 0.5), (math.log(0.01), math.log(0.99)))
    assert sure.probabilities == pytest.approx((0.01, 0.99))
    assert sure.mass == pytest.approx(1.0)
    assert sure.mean == pytest.approx(0.49) and sure.p_positive == pytest.approx(0.99)
    torn = ScoreDistribution.from_logprobs((-0.5, 0.5), (math.log(0.2), math.log(0.2)))
    assert torn.mass == pytest.approx(0.4) and torn.p_positive == pytest.approx(0.5)
    assert torn.spread == pytest.approx(0.5) and torn.spread > sure.spread
    assert set(torn.summary()) == {'mean', 'spread', 'p_positive', 'mass'}
    # a very unlikely set of candidates normalises without underflow
    far = ScoreDistribution.from_logprobs((0.0, 1.0), (-2000.0, -2001.0))
    assert sum(far.probabilities) == pytest.approx(1.0) and far.mass == 0.0


@pytest.mark.parametrize(('name', 'profile'), [('demo_grm', DEMO_GRM),
                                               ('demo_grm_qwen3', DEMO_GRM_QWEN3)])
def test_confidence_kv_shared_scoring_equals_a_full_forward(name: str, profile) -> None:
    torch = pytest.importorskip('torch')
    pytest.importorskip('transformers')
    from test_transformers_backend import make_query, sizes_of

    from robo_dopamine_ros.backends.candidate_scoring import candidate_ids
    from robo_dopamine_ros.backends.prefill import head_ids
    from robo_dopamine_ros.backends.transformers_backend import TransformersBackend
    from robo_dopamine_ros.backends.transformers_config import TransformersConfig
    from robo_dopamine_ros.core.types import Query

    backend = TransformersBackend(TransformersConfig(
        model=str(ROOT / name), device='cpu', pixel_limits=profile.pixel_limits,
        confidence=True))
    try:
        base = [make_query('open the drawer', seed=s, sizes=sizes_of(backend)) for s in range(2)]
        queries = [Query(q.task + ' now' * (3 * i), q.images, q.mode, profile.prompt_variant)
                   for i, q in enumerate(base)]           # row 0 is left padded
        answers = backend.generate(queries)
        plain = TransformersBackend(TransformersConfig(
            model=str(ROOT / name), device='cpu', pixel_limits=profile.pixel_limits))
        try:       # the scoring forward shares the vision cache's batch: answers unchanged
            assert [a.text for a in plain.generate(queries)] == [a.text for a in answers]
        finally:
            plain.close()
        tok = backend.processor.tokenizer
        head = head_ids(tok)
        candidates = candidate_ids(tok, head)
        worst = 0.0
        for query, answer in zip(queries, answers, strict=True):
            dist = answer.distribution
            assert dist is not None and sum(dist.probabilities) == pytest.approx(1.0)
            enc = backend.build_inputs([query])
            top = max(range(len(candidates)), key=dist.probabilities.__getitem__)
            for k in sorted({top, 0, 10, 20}):        # a few: a full forward each
                cand = candidates[k]
                tail = torch.tensor([head + cand])
                full = dict(enc, input_ids=torch.cat([enc['input_ids'], tail], 1),
                            attention_mask=torch.ones(1, enc['input_ids'].shape[1] + tail.shape[1],
                                                      dtype=torch.long))
                if 'mm_token_type_ids' in enc:
                    full['mm_token_type_ids'] = torch.cat(
                        [enc['mm_token_type_ids'], torch.zeros_like(tail)], 1)
                with torch.inference_mode():
                    logp = backend.model(**full).logits[0].float().log_softmax(-1)
                n = full['input_ids'].shape[1]
                want = sum(logp[n - len(cand) - 1 + j, cand[j]].item() for j in range(len(cand)))
                # p_k = exp(logp_k) / mass: the backend's log-probability of candidate k
                got = math.log(dist.probabilities[k]) + math.log(dist.mass)
                worst = max(worst, abs(got - want))
        assert worst < 1e-3
    finally:
        backend.close()


# -- the distribution's way out: engine result, records, the RL info, the Confidence message ---

class _Confident:
    """A TEST DOUBLE backend: the ScriptedBackend's answers plus a fixed distribution, as the
    transformers backend gives them with ``confidence`` on."""

    def __init__(self) -> None:
        from robo_dopamine_ros.backends.scripted import ScriptedBackend

        self.inner = ScriptedBackend(lambda q: '<score>+20.0%</score>')
        self.model_id = self.inner.model_id
        probs = [0.0] * 21
        probs[12], probs[8] = 0.75, 0.25           # +20 % and -20 %
        self.dist = ScoreDistribution(CANDIDATE_HOPS, tuple(probs), 0.9)

    def generate(self, queries):
        from dataclasses import replace

        return [replace(a, distribution=self.dist) for a in self.inner.generate(queries)]

    def request_stop(self) -> None: ...

    def cancel(self) -> None: ...


def _scored_step():
    import numpy as np

    from robo_dopamine_ros.core.engine import EpisodeEngine, Sample
    from robo_dopamine_ros.core.profiles import GRM_3B

    def frame(v: int) -> np.ndarray:
        return np.full((48, 64, 3), v, np.uint8)

    backend = _Confident()
    engine = EpisodeEngine(backend, profile=GRM_3B)
    engine.start('put the cup on the plate', frame(250))
    start = engine.step(Sample(10**9, frame(10), frame(11), frame(12)))
    return start, engine.step(Sample(2 * 10**9, frame(20), frame(21), frame(22))), backend.dist


def test_confidence_reaches_the_result_its_records_and_the_rl_info() -> None:
    from robo_dopamine_ros.core.types import ALL_MODES
    from robo_dopamine_ros.rl.wrappers import _Scorer

    start, step, dist = _scored_step()
    assert all(step.reading(m).score.distribution is dist for m in ALL_MODES)
    assert dist.mean == pytest.approx(0.1) and dist.p_positive == pytest.approx(0.75)
    rec, first = step.to_record(), start.to_record()
    assert rec['forward_confidence_p_positive'] == pytest.approx(0.75)
    assert rec['incremental_confidence_mass'] == pytest.approx(0.9)
    assert first['forward_confidence_mean'] is None and set(first) == set(rec)   # CSV columns
    info = _Scorer.info(step, scored=True)
    assert info['confidence']['backward'] == dist.summary()
    assert _Scorer.info(step, scored=False)['confidence'] == {}


def test_confidence_message_is_its_own_and_progress_is_unchanged() -> None:
    pytest.importorskip('rclpy')
    from robo_dopamine_ros.msg import Confidence, Progress

    from robo_dopamine_ros.ros.messages import confidence_msg

    start, step, _ = _scored_step()
    assert confidence_msg(start, 'cam') is None                   # START: nothing was scored
    msg = confidence_msg(step, 'cam')
    assert isinstance(msg, Confidence) and msg.header.frame_id == 'cam'
    assert (msg.step, list(msg.modes)) == (1, ['incremental', 'forward', 'backward'])
    assert list(msg.p_positive) == pytest.approx([0.75] * 3)
    assert len(msg.probabilities) == 3 * len(msg.candidate_hops) == 63
    assert 'mean' not in Progress.get_fields_and_field_types()
