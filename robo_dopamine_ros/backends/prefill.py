"""Answer prefill and early stop: decode only the tokens of an answer that carry information.

Every answer is ``<score>`` + a signed number + ``%</score>``; only the sign and the digits carry
information. Under greedy decoding, putting into the prompt the head the model would write
anyway, as the token ids it was trained on, and stopping at the first token after the number,
gives the same answer in fewer decode steps, exactly when the model would have written those
tokens (``robo-dopamine prefill-check`` measures it on the user's weights).

* The head is the longest common token-id prefix of every answer form the parser accepts
  (:func:`answer_forms`): with the Qwen tokenizer ``<``, ``score``, since the sign is merged
  with ``>`` (``>+``, ``>-``) and an unsigned number starts after a bare ``>``.
* The early stop is the stop-string mechanism with two more strings (:data:`EARLY_STOP_STRINGS`):
  the first ``%`` or ``</`` of an answer follows its number (Qwen writes ``%</`` as one token).
* The parser still sees the whole answer: the head, the generated text and, once the early stop
  fired, the rest of ``%</score>`` that every answer shares (:func:`finish_answer`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from .decoding import STOP_STRING

#: Stop strings of the early stop: the first one in an answer is the first token after its number.
EARLY_STOP_STRINGS: tuple[str, ...] = ('%', '</')
#: The prefilled head as text, for servers that take text only (the Qwen tokenizer's head).
ANSWER_HEAD = '<score'
#: ``model.answer_prefill``: ``auto`` follows the checkpoint profile (off for released ones).
PREFILL_MODES: tuple[str, ...] = ('auto', 'on', 'off')
#: The number after the tag (its decimals in group 1).
_NUMBER = re.compile(r'<score>\s*[+-]?\d+(\.\d+)?')
#: A complete number after the tag, the ``%`` part, then what came after it.
_NUMBER_THEN = re.compile(r'(<score>\s*[+-]?\d+(?:\.\d+)?)(\s*%?\s*)(.*)', re.S)


def answer_forms() -> Iterator[str]:
    """Every answer form the parser reads as OK for -100 … +100: signed or not, with one decimal
    or none, with or without ``%``."""
    for value in range(-100, 101):
        numbers = {f'{value:+d}', f'{value:+.1f}'}
        if value >= 0:
            numbers |= {f'{value:d}', f'{value:.1f}'}
        for number in sorted(numbers):
            yield f'<score>{number}%</score>'
            yield f'<score>{number}</score>'


def head_ids(tokenizer: Any) -> list[int]:
    """The token ids every answer form starts with (:func:`answer_forms`), as the tokenizer
    splits a whole answer, so the head ends on a boundary the model itself writes."""
    encoded = tokenizer(list(answer_forms()), add_special_tokens=False)['input_ids']
    head = list(encoded[0])
    for ids in encoded[1:]:
        common = zip(head, ids, strict=False)
        head = head[:next((i for i, (a, b) in enumerate(common) if a != b), min(len(head),
                                                                               len(ids)))]
    return head


def stop_strings(prefill: bool) -> list[str]:
    """The stop strings of a generation, with or without the early stop."""
    return [STOP_STRING, *EARLY_STOP_STRINGS] if prefill else [STOP_STRING]


def resolve_prefill(mode: str, profile_default: bool) -> bool:
    """``model.answer_prefill`` as a switch: ``auto`` is the profile's setting."""
    return profile_default if mode == 'auto' else mode == 'on'


def finish_answer(head: str, generated: str) -> tuple[str, bool]:
    """The whole answer of a prefilled generation, and whether its close was completed.

    ``generated`` follows ``head``; a server that ignored the partial assistant message wrote
    the head itself, so it is not added twice. When the generation stopped at the first ``%``
    or ``</`` after a complete number, the rest of ``%</score>`` is appended; anything else
    (a budget cut inside the number, a runaway, no number) is left for the parser to judge.
    """
    text = generated if generated.lstrip().startswith(head) else head + generated
    match = _NUMBER_THEN.fullmatch(text)
    if match is None or STOP_STRING in text:
        return text, False
    number, percent, rest = match.groups()
    closing = ''.join(rest.split())
    if not (('%' in percent or closing) and STOP_STRING.startswith(closing)):
        return text, False
    return number + percent + STOP_STRING, True


def first_after_number(pieces: Sequence[str]) -> int | None:
    """Index of the first piece (token text) that holds a character after the answer's number,
    or ``None``: what the early stop must end on (used by the tokenizer boundary test and the
    agreement report)."""
    text = ''
    for i, piece in enumerate(pieces):
        text += piece
        match = _NUMBER.match(text)
        if match is None or match.end() == len(text):
            continue
        pending_decimals = (text[match.end()] == '.' and match.group(1) is None
                            and match.end() + 1 == len(text))
        if not pending_decimals:
            return i
    return None
