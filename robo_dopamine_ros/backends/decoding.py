"""How every runtime decodes an answer: where generation stops, and upstream's sampling."""

from __future__ import annotations

#: Generation of an answer ends once this string is complete (the answer is one ``<score>`` tag).
STOP_STRING = '</score>'
#: Upstream's vLLM ``SamplingParams`` (docs/upstream.md §2.2), minus its 1024-token budget.
UPSTREAM_SAMPLING: dict[str, float | int] = {'temperature': 0.1, 'top_p': 0.9, 'top_k': 50}
