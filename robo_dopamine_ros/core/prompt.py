"""The GRM prompt, byte-exact, and its assembly into the interleaved chat message (docs/upstream.md §3).

Compatibility with the released checkpoints depends on these bytes: a test pins the length and
sha256 of the unformatted template. ``{task}`` occurs twice; ``<image>`` marks the 8 image slots.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

from .errors import ConfigError

IMAGE_TAG = '<image>'
DEFAULT_SYSTEM_PROMPT = 'You are a helpful assistant.'

#: The inference/eval template of upstream (task inside backticks).
INFERENCE_TEMPLATE = """
You are a rigorous, impartial vision evaluator for robot task progress. Your job is to judge whether the AFTER image set moves closer to the task objective than the BEFORE image set, using the provided reference examples only as anchors.

<Task>
`{task}`

REFERENCE EXAMPLES (for visual anchoring only; not necessarily this run's actual START/END):
- REFERENCE START — Robot Front Image (task just starting): <image>
- REFERENCE END — Robot Front Image (task fully completed): <image>
</Task>

BEFORE Robot Front Image: <image>
BEFORE Robot Left Wrist Image: <image>
BEFORE Robot Right Wrist Image: <image>

AFTER Robot Front Image: <image>
AFTER Robot Left Wrist Image: <image>
AFTER Robot Right Wrist Image: <image>

Goal
Compare the BEFORE and AFTER three-view sets and judge whether AFTER moves closer to accomplishing the task than BEFORE, using the REFERENCE START/END images as conceptual anchors.

Progress Estimation (no formulas)
1) Calibrate using the references:
   - REFERENCE START = “just beginning”; REFERENCE END = “fully completed.”
   - Visually estimate how far BEFORE and AFTER are along this START→END continuum.
2) Direction:
   - AFTER better than BEFORE → positive score.
   - AFTER worse than BEFORE → negative score.
   - Essentially the same → 0.
3) Normalize to an integer percentage in [-100%, +100%]:
   - For improvements, scale the improvement relative to what remained from BEFORE to END.
   - For regressions, scale the deterioration relative to how far BEFORE had progressed from START.
   - Clip to [-100%, +100%] and round to the nearest integer percent.

Evaluation Criteria (apply across all three views)
1) Task Alignment: Evidence directly tied to `{task}`.
2) Completeness & Accuracy: Correct pose, contact, placement, orientation, grasp quality, absence of collisions, stability, etc.
3) View-Specific Evidence & Consistency:
   - Use the **Front** view for global layout, object pose, approach path, end-state geometry, and scene-level constraints.
   - Use the **Left/Right Wrist** views to inspect **fine-grained gripper state** (finger closure, contact location/area, slippage, wedge/misalignment, object deformation, cable/wire/cloth entanglement, unintended contact, occluded collisions).
   - When views disagree, prioritize the view that provides **decisive cues** for the criterion at hand. In particular, wrist views often **override** for grasp/contact validity and safety.
   - If any single view shows a failure that invalidates success (e.g., mis-grasp, collision, unsafe/unstable pose), let that override when judging progress.
4) Ignore Irrelevant Factors: Lighting, color shifts, background clutter, or UI/watermarks that don't affect task success.
5) Ambiguity: If evidence is genuinely inconclusive or conflicting without decisive cues, treat progress as unchanged → 0%.

Output Format (STRICT)
Return ONLY one line containing the score wrapped in <score> tags, as an integer percentage with a percent sign:
<score>+NN%</score>  or  <score>-NN%</score>  or  <score>0%</score>
"""

#: The training-data template (upstream ``1_generate_data.py``): the task without backticks.
TRAINING_TEMPLATE = INFERENCE_TEMPLATE.replace('`{task}`', '{task}')

#: A short prompt for small checkpoints trained on it (the demo GRM): same 8 slots, same answer
#: format, ~5x fewer tokens. Never sent to the released GRMs (their profiles keep INFERENCE).
COMPACT_TEMPLATE = (
    'Task: {task}\n'
    'START <image> END <image>\n'
    'BEFORE <image> <image> <image>\n'
    'AFTER <image> <image> <image>\n'
    'Progress from BEFORE to AFTER as <score>+NN%</score>.')

#: What each of the 8 image slots shows, in prompt order.
SLOT_ROLES: tuple[str, ...] = (
    'ref_start', 'ref_end',
    'before_front', 'before_left', 'before_right',
    'after_front', 'after_left', 'after_right',
)
NUM_IMAGES = len(SLOT_ROLES)

# Qwen special tokens that would be tokenised as such if they appeared in user text.
_SPECIAL_MARKERS = ('<|im_start|>', '<|im_end|>', '<|vision_start|>', '<|vision_end|>',
                    '<|image_pad|>', '<|video_pad|>', '<|endoftext|>')


class PromptVariant(str, enum.Enum):
    """Which upstream template to render; checkpoints differ in which one they were trained on."""

    INFERENCE = 'inference'
    TRAINING = 'training'
    COMPACT = 'compact'     # COMPACT_TEMPLATE, for small checkpoints trained on it


def template_for(variant: PromptVariant | str) -> str:
    """Return the unformatted template of ``variant``."""
    variant = PromptVariant(variant)
    return {PromptVariant.INFERENCE: INFERENCE_TEMPLATE, PromptVariant.TRAINING: TRAINING_TEMPLATE,
            PromptVariant.COMPACT: COMPACT_TEMPLATE}[variant]


def render_prompt(task: str, variant: PromptVariant | str = PromptVariant.INFERENCE) -> str:
    """Substitute the task into the template; the result still holds the 8 ``<image>`` tags."""
    check_task(task)
    return template_for(variant).replace('{task}', task)


def check_task(task: str) -> None:
    """Reject task strings that would change the prompt's structure."""
    if not isinstance(task, str) or not task.strip():
        raise ConfigError(f'task must be a non-empty string, got {task!r}')
    for marker in (IMAGE_TAG, *_SPECIAL_MARKERS):
        if marker in task:
            raise ConfigError(f'task {task!r} contains the reserved marker {marker!r}')


def prompt_segments(task: str, variant: PromptVariant | str = PromptVariant.INFERENCE) -> list[str]:
    """Split the rendered prompt on ``<image>``: 9 text segments around the 8 image slots."""
    segments = render_prompt(task, variant).split(IMAGE_TAG)
    assert len(segments) == NUM_IMAGES + 1
    return segments


def user_content(task: str, images: Sequence[Any],
                 variant: PromptVariant | str = PromptVariant.INFERENCE,
                 ) -> list[dict[str, Any]]:
    """Interleave text segments and images as the user turn's content items.

    Args:
        task: The task instruction.
        images: The 8 images in ``SLOT_ROLES`` order (any object; it is stored under ``image``).
        variant: The template variant.

    Returns:
        ``[{'type': 'text', 'text': s0}, {'type': 'image', 'image': img0}, ..., {'type': 'text',
        'text': s8}]`` as upstream builds it.
    """
    if len(images) != NUM_IMAGES:
        raise ConfigError(f'the GRM prompt takes {NUM_IMAGES} images, got {len(images)}')
    segments = prompt_segments(task, variant)
    content: list[dict[str, Any]] = []
    for text, image in zip(segments, images, strict=False):
        content.append({'type': 'text', 'text': text})
        content.append({'type': 'image', 'image': image})
    content.append({'type': 'text', 'text': segments[-1]})
    return content


def chat_messages(task: str, images: Sequence[Any],
                  variant: PromptVariant | str = PromptVariant.INFERENCE,
                  system: str | None = DEFAULT_SYSTEM_PROMPT) -> list[dict[str, Any]]:
    """The conversation: the default system line (as the Qwen template adds) and the user turn."""
    messages: list[dict[str, Any]] = []
    if system is not None:
        messages.append({'role': 'system', 'content': [{'type': 'text', 'text': system}]})
    messages.append({'role': 'user', 'content': user_content(task, images, variant)})
    return messages
