"""Score parsing: every case of the spec, and no silent 0."""

from __future__ import annotations

import pytest

from robo_dopamine_ros.core.parsing import ParseStatus, format_score, parse_score


@pytest.mark.parametrize(('text', 'hop'), [
    ('<score>+37.0%</score>', 0.37),
    ('<score>-66.7%</score>', -0.667),
    ('<score>+0.0%</score>', 0.0),
    ('<score>0.0%</score>', 0.0),
    ('<score>0%</score>', 0.0),
    ('<score>12%</score>', 0.12),
    ('<score> -5 %</score>', -0.05),
    ('<score>+40</score>', 0.40),
    ('The answer is\n<score>+8%</score>\n', 0.08),
    ('<score>+5%</score> no, <score>-3%</score>', -0.03),   # upstream takes the last tag
])
def test_parsing_well_formed_answers(text: str, hop: float) -> None:
    r = parse_score(text)
    assert r.status is ParseStatus.OK
    assert r.hop == pytest.approx(hop) and r.hop_raw == pytest.approx(hop)
    assert r.text == text


def test_parsing_clamps_but_keeps_the_raw_value() -> None:
    r = parse_score('<score>+150%</score>')
    assert (r.hop, r.hop_raw) == (1.0, 1.5)
    r = parse_score('<score>-230.5%</score>')
    assert r.hop == -1.0 and r.hop_raw == pytest.approx(-2.305)


def test_parsing_runaway_output_recovers_the_leading_number() -> None:
    text = '<score>-25.0.0.5.6.6.6.6.6.6.6.6.6.6.6.6'
    r = parse_score(text)
    assert r.status is ParseStatus.LENIENT and r.hop == pytest.approx(-0.25)
    assert 'malformed' in r.reason


def test_parsing_api_fallback_takes_the_last_percentage() -> None:
    r = parse_score('progress went from 10% to about +30 %')
    assert r.status is ParseStatus.LENIENT and r.hop == pytest.approx(0.30)


@pytest.mark.parametrize('text', ['', '\n\n\n', '<score>abc</score>', 'no idea', None])
def test_parsing_failure_is_typed_not_zero(text: str | None) -> None:
    r = parse_score(text)  # type: ignore[arg-type]
    assert r.status is ParseStatus.FAILED
    assert r.hop is None and not r.usable
    assert r.reason.startswith('no score')


def test_parsing_strict_mode_refuses_malformed_answers() -> None:
    assert parse_score('<score>-25.0.0.5', lenient=False).status is ParseStatus.FAILED
    assert parse_score('about 30%', lenient=False).status is ParseStatus.FAILED


def test_parsing_upstream_zero_is_explicit() -> None:
    r = parse_score('garbage', upstream_zero=True)
    assert r.status is ParseStatus.ZEROED and r.hop == 0.0 and r.usable


def test_parsing_format_score_round_trips() -> None:
    assert format_score(0.37) == '<score>+37.0%</score>'
    assert format_score(-2 / 3) == '<score>-66.7%</score>'
    assert parse_score(format_score(-0.5)).hop == -0.5
