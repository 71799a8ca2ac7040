"""Per-mode progress, fusion, consistency check and validity against hand-computed values."""

from __future__ import annotations

import math

import pytest

from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.core.parsing import ParseStatus, ScoreReading, parse_score
from robo_dopamine_ros.core.progress import (
    CONSISTENCY_EPS,
    FusionConfig,
    FusionMethod,
    ProgressState,
    StepStatus,
    consistency_weight,
    fuse_step,
    incremental_update,
)
from robo_dopamine_ros.core.types import Mode

I, F, B = Mode.INCREMENTAL, Mode.FORWARD, Mode.BACKWARD  # noqa: E741 - the paper's names


def score(pct: float) -> ScoreReading:
    return parse_score(f'<score>{pct:+.1f}%</score>')


def run(config: FusionConfig, steps: list[dict[Mode, ScoreReading]]) -> list:
    state, out = ProgressState(), []
    for scores in steps:
        fused = fuse_step(state, scores, config)
        state = fused.state
        out.append(fused)
    return out


def test_progress_incremental_update_inverts_the_hop() -> None:
    assert incremental_update(0.0, 0.5) == 0.5
    assert incremental_update(0.5, 0.5) == 0.75
    assert incremental_update(0.75, -0.5) == 0.375
    assert incremental_update(0.0, -0.3) == 0.0


def test_progress_incremental_chain_of_the_issue() -> None:
    res = run(FusionConfig(modes=(I,)), [{I: score(50)}, {I: score(50)}, {I: score(-50)}])
    assert [r.progress for r in res] == [0.5, 0.75, 0.375]
    assert all(r.valid for r in res)


def test_progress_forward_and_backward_readings_are_clamped_with_raw_kept() -> None:
    f = run(FusionConfig(modes=(F,)), [{F: score(30)}, {F: score(-20)}])
    assert [r.progress for r in f] == [0.3, 0.0]
    assert f[1].progress_raw == pytest.approx(-0.2)
    b = run(FusionConfig(modes=(B,)), [{B: score(-70)}, {B: parse_score('<score>+20%</score>')}])
    assert b[0].progress == pytest.approx(0.3)
    assert b[1].progress == 1.0 and b[1].progress_raw == pytest.approx(1.2)


def test_progress_paper_fusion_rebases_incremental_on_the_fused_value() -> None:
    res = run(FusionConfig(), [{I: score(20), F: score(30), B: score(-70)},
                               {I: score(10), F: score(40), B: score(-60)}])
    assert res[0].progress == pytest.approx((0.2 + 0.3 + 0.3) / 3)
    phi1 = res[0].progress
    inc2 = phi1 + (1 - phi1) * 0.1                  # re-based on the fused Φ*(s1)
    assert res[1].reading(I).progress == pytest.approx(inc2)
    assert res[1].progress == pytest.approx((inc2 + 0.4 + 0.4) / 3)
    assert res[1].progress == pytest.approx(0.38)


def test_progress_upstream_parity_chains_each_mode_and_keeps_the_step0_rule() -> None:
    cfg = FusionConfig(method=FusionMethod.UPSTREAM)
    res = run(cfg, [{I: score(-20), F: score(10), B: score(-90)},
                    {I: score(50), F: score(30), B: score(-50)}])
    assert res[0].reading(I).progress_raw == pytest.approx(-0.2)    # p = s at step 0
    assert res[0].reading(I).progress == 0.0
    assert res[0].progress_raw == pytest.approx(0.0)
    assert res[1].reading(I).progress_raw == pytest.approx(-0.2 + 1.2 * 0.5)   # own previous
    assert res[1].reading(F).progress_raw == pytest.approx(0.3)
    assert res[1].reading(B).progress_raw == pytest.approx(0.5)
    assert res[1].progress == pytest.approx(0.4)


def test_progress_upstream_incremental_matches_upstream_per_mode_numbers() -> None:
    # upstream run_pipeline, incremental mode: hops 0.3, -0.5, 0.6 -> 0.3, 0.15, 0.66
    res = run(FusionConfig(modes=(I,), method=FusionMethod.UPSTREAM),
              [{I: score(30)}, {I: score(-50)}, {I: score(60)}])
    assert [round(r.progress_raw, 6) for r in res] == [0.3, 0.15, 0.66]


def test_progress_consistency_weight_formula() -> None:
    assert consistency_weight(0.4, 0.4) == 1.0
    delta = 0.4 / (0.3 + CONSISTENCY_EPS)
    assert consistency_weight(0.1, 0.5) == pytest.approx(math.exp(-20 * delta ** 2))


def test_progress_consistency_near_zero_progress_does_not_freeze() -> None:
    # F = 0.02, B = 0 right after the start: with ε = 0.1 the weight stays usable ...
    assert consistency_weight(0.02, 0.0) == pytest.approx(math.exp(-20 * (0.02 / 0.11) ** 2))
    assert consistency_weight(0.02, 0.0) > 0.5
    # ... while a vanishing ε would freeze progress at 0.
    assert consistency_weight(0.02, 0.0, eps=1e-6) < 1e-30
    assert consistency_weight(0.0, 0.0) == 1.0


def test_progress_consistency_update_agreeing_and_disagreeing() -> None:
    cfg = FusionConfig(consistency=True)
    agree = run(cfg, [{I: score(20), F: score(40), B: score(-60)}])[0]
    assert agree.consistency_weight == 1.0
    assert agree.progress == pytest.approx(0.5 * (0.4 + 0.2))
    disagree = run(cfg, [{I: score(20), F: score(10), B: score(-50)}])[0]
    assert disagree.consistency_weight < 1e-8
    assert disagree.progress == pytest.approx(0.0, abs=1e-8)   # keeps the previous progress
    assert disagree.valid


def test_progress_partial_step_fuses_the_usable_readings_and_is_flagged() -> None:
    bad = parse_score('\n\n')
    res = run(FusionConfig(), [{I: score(20), F: score(30), B: bad}])[0]
    assert res.status is StepStatus.PARTIAL and not res.valid
    assert res.progress == pytest.approx(0.25)
    assert 'backward' in res.reason and res.state.transitions == 1
    assert res.reading(B).score.status is ParseStatus.FAILED and res.reading(B).progress is None


def test_progress_held_step_repeats_progress_and_keeps_the_state() -> None:
    cfg = FusionConfig()
    first = run(cfg, [{I: score(20), F: score(30), B: score(-70)}])[0]
    bad = parse_score('nope')
    held = fuse_step(first.state, {I: bad, F: bad, B: bad}, cfg)
    assert held.status is StepStatus.HELD and not held.valid
    assert held.progress == first.progress and held.state is first.state
    assert held.reason.startswith('held previous progress')


def test_progress_zeroed_and_lenient_readings() -> None:
    zero = parse_score('junk', upstream_zero=True)
    res = run(FusionConfig(modes=(I,)), [{I: zero}])[0]
    assert res.status is StepStatus.ZEROED and not res.valid and res.progress == 0.0
    lenient = parse_score('<score>+40.0.0.1')
    ok = run(FusionConfig(modes=(I,)), [{I: lenient}])[0]
    assert ok.valid and ok.progress == pytest.approx(0.4) and 'lenient' in ok.reason
    strict = run(FusionConfig(modes=(I,), accept_lenient=False), [{I: lenient}])[0]
    assert strict.status is StepStatus.HELD


def test_progress_unrequested_modes_are_skipped() -> None:
    res = run(FusionConfig(modes=(F,)), [{F: score(10)}])[0]
    assert res.reading(I).score.status is ParseStatus.SKIPPED
    assert res.reading(B).score.status is ParseStatus.SKIPPED


@pytest.mark.parametrize('kwargs', [
    {'modes': ()}, {'modes': (I, I)}, {'alpha': 0.0}, {'modes': ('sideways',)},
    {'method': 'median'},
    {'consistency': True, 'method': FusionMethod.UPSTREAM},
    {'consistency': True, 'modes': (I, F)}])
def test_progress_fusion_config_is_validated(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        FusionConfig(**kwargs)
