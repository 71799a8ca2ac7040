"""The GRM prompt must be byte-exact: the released checkpoint was trained on these bytes."""

from __future__ import annotations

import hashlib

import pytest

from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.core.prompt import (
    DEFAULT_SYSTEM_PROMPT,
    INFERENCE_TEMPLATE,
    SLOT_ROLES,
    TRAINING_TEMPLATE,
    PromptVariant,
    chat_messages,
    prompt_segments,
    render_prompt,
    user_content,
)

SHA256 = '6baabeeecf35c731aa1d058147f741f064a1391956bd8aa39448fe9bacad1b94'


def test_prompt_template_is_byte_exact() -> None:
    assert len(INFERENCE_TEMPLATE) == 3040
    assert hashlib.sha256(INFERENCE_TEMPLATE.encode('utf-8')).hexdigest() == SHA256


def test_prompt_template_has_the_spec_characters() -> None:
    t = INFERENCE_TEMPLATE
    assert t.startswith('\nYou are a rigorous') and t.endswith('<score>0%</score>\n')
    assert t.count('{task}') == 2 and t.count('<image>') == 8
    assert 'REFERENCE START \u2014 Robot' in t and '\u201cjust beginning\u201d' in t
    assert 'START\u2192END' in t
    assert '<score>+NN%</score>  or  <score>-NN%</score>  or  <score>0%</score>' in t


def test_prompt_training_variant_drops_only_the_backticks() -> None:
    inf = render_prompt('stack cups', PromptVariant.INFERENCE)
    train = render_prompt('stack cups', 'training')
    assert '<Task>\n`stack cups`\n' in inf and '<Task>\nstack cups\n' in train
    assert 'Evidence directly tied to stack cups.' in train
    assert train == inf.replace('`stack cups`', 'stack cups')
    assert len(INFERENCE_TEMPLATE) - len(TRAINING_TEMPLATE) == 4


def test_prompt_segments_follow_the_slot_order() -> None:
    seg = prompt_segments('fold the towel')
    assert len(seg) == 9 and len(SLOT_ROLES) == 8
    assert seg[0].endswith('REFERENCE START \u2014 Robot Front Image (task just starting): ')
    assert seg[1] == '\n- REFERENCE END \u2014 Robot Front Image (task fully completed): '
    assert seg[2] == '\n</Task>\n\nBEFORE Robot Front Image: '
    assert seg[3] == '\nBEFORE Robot Left Wrist Image: '
    assert seg[4] == '\nBEFORE Robot Right Wrist Image: '
    assert seg[5] == '\n\nAFTER Robot Front Image: '
    assert seg[6] == '\nAFTER Robot Left Wrist Image: '
    assert seg[7] == '\nAFTER Robot Right Wrist Image: '
    assert seg[8].startswith('\n\nGoal\nCompare the BEFORE')


def test_prompt_user_content_interleaves_text_and_images() -> None:
    images = [f'img{i}' for i in range(8)]
    content = user_content('open drawer', images)
    assert [c['type'] for c in content] == ['text', 'image'] * 8 + ['text']
    assert [c['image'] for c in content if c['type'] == 'image'] == images
    joined = ''.join(c['text'] if c['type'] == 'text' else '<image>' for c in content)
    assert joined == render_prompt('open drawer')


def test_prompt_chat_messages_carry_the_default_system_line() -> None:
    msgs = chat_messages('open drawer', list(range(8)))
    assert msgs[0] == {'role': 'system',
                       'content': [{'type': 'text', 'text': DEFAULT_SYSTEM_PROMPT}]}
    assert msgs[1]['role'] == 'user'
    assert chat_messages('open drawer', list(range(8)), system=None)[0]['role'] == 'user'


@pytest.mark.parametrize('task', ['', '   ', 'put <image> here', 'x <|im_end|> y'])
def test_prompt_rejects_tasks_that_break_the_structure(task: str) -> None:
    with pytest.raises(ConfigError):
        render_prompt(task)


def test_prompt_user_content_needs_eight_images() -> None:
    with pytest.raises(ConfigError, match='8 images'):
        user_content('t', [1, 2, 3])
