"""The OpenAI-compatible backend over real HTTP on loopback: the request it sends, retries,
timeouts, malformed answers, the concurrency bound, and an API key that never leaks."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from openai_server import FakeOpenAI, Reply, completion
from PIL import Image

from robo_dopamine_ros.backends.openai_backend import OpenAIBackend
from robo_dopamine_ros.backends.openai_config import OpenAIConfig
from robo_dopamine_ros.core.errors import BackendError, BackendStoppedError, ConfigError
from robo_dopamine_ros.core.prompt import prompt_segments
from robo_dopamine_ros.core.types import ImageKey, KeyedImage, Mode, Query

KEY = 'sk-test-SECRET-4711'
TASK = 'put the cup on the plate'


def query(task: str = TASK, base: int = 0) -> Query:
    """Eight solid images whose red channel is the slot number (x20), so order is checkable."""
    images = []
    for slot in range(8):
        pixels = np.zeros((56, 84, 3), np.uint8)
        pixels[..., 0] = (base + slot) * 20
        pixels[..., 2] = 200
        images.append(KeyedImage(ImageKey('ep', f'slot{slot}', base), pixels))
    return Query(task, tuple(images), Mode.INCREMENTAL)


@contextlib.contextmanager
def serving(respond: Callable[[int, dict], Reply],
            **kw: object) -> Iterator[tuple[FakeOpenAI, OpenAIBackend]]:
    """A fake server answering ``respond`` and a backend pointed at it."""
    with FakeOpenAI(respond) as server, backend(server.url, **kw) as b:
        yield server, b


def backend(url: str, **kw: object) -> OpenAIBackend:
    options: dict[str, object] = {'model': 'grm-3b', 'base_url': url,
                                  'api_key_env': 'GRM_TEST_KEY', 'timeout_s': 2.0,
                                  'retry_delay_s': 0.01, **kw}
    return OpenAIBackend(OpenAIConfig(**options))  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('GRM_TEST_KEY', KEY)


def decode(url: str) -> np.ndarray:
    head, _, data = url.partition(',')
    assert head in ('data:image/jpeg;base64', 'data:image/png;base64')
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert('RGB'))


def test_openai_request_interleaves_prompt_and_images_in_slot_order() -> None:
    with serving(lambda n, body: Reply(body=completion('<score>+12%')), image_format='png',
                 max_tokens=24) as (server, b):
        [answer] = b.generate([query()])
    assert answer.error is None
    assert answer.text == '<score>+12%</score>'        # stopped on </score>: re-appended
    assert (answer.meta['attempts'], answer.meta['completion_tokens']) == (1.0, 7.0)
    [req] = server.requests
    assert req.path == '/v1/chat/completions'
    assert req.headers['Authorization'] == f'Bearer {KEY}'
    body = req.body
    # Greedy decoding set in full: a vLLM server fills what a request leaves out from the
    # checkpoint's generation_config.json (Qwen's repetition penalty 1.05, top-k 1, ...).
    assert {k: v for k, v in body.items() if k != 'messages'} == {
        'model': 'grm-3b', 'temperature': 0.0, 'top_p': 1.0, 'top_k': -1, 'min_p': 0.0,
        'repetition_penalty': 1.0, 'max_tokens': 24, 'stop': ['</score>']}
    # The in-process runtimes' system line (a Qwen3-VL template adds none), one user turn.
    system, message = body['messages']
    assert system == {'role': 'system',
                      'content': [{'type': 'text', 'text': 'You are a helpful assistant.'}]}
    assert message['role'] == 'user'
    content = message['content']
    assert [c['type'] for c in content] == ['text', 'image_url'] * 8 + ['text']
    assert [c['text'] for c in content[::2]] == prompt_segments(TASK)
    for slot, item in enumerate(content[1::2]):
        pixels = decode(item['image_url']['url'])
        assert pixels.shape == (56, 84, 3)
        assert (int(pixels[0, 0, 0]), int(pixels[0, 0, 2])) == (slot * 20, 200)


def test_openai_jpeg_like_upstream_and_upstream_temperature() -> None:
    with serving(lambda n, body: Reply(body=completion('<score>-5%</score>')),
                 upstream_sampling=True) as (server, b):
        [answer] = b.generate([query()])
    assert answer.text == '<score>-5%</score>'          # already closed: nothing appended
    body = server.requests[0].body
    assert {k: body[k] for k in ('temperature', 'top_p', 'top_k', 'repetition_penalty')} == {
        'temperature': 0.1, 'top_p': 0.9, 'top_k': 50, 'repetition_penalty': 1.0}
    url = body['messages'][1]['content'][1]['image_url']['url']
    assert url.startswith('data:image/jpeg;base64,')
    assert abs(int(decode(url)[10, 10, 2]) - 200) <= 3   # lossy, but the same picture


def test_openai_sends_only_openai_sampling_fields_without_vllm_sampling() -> None:
    with serving(lambda n, body: Reply(body=completion('<score>+1%</score>')),
                 vllm_sampling=False) as (server, b):
        b.generate([query()])
    body = server.requests[0].body
    assert {'temperature': 0.0, 'top_p': 1.0}.items() <= body.items()
    assert not {'top_k', 'min_p', 'repetition_penalty'} & body.keys()


def test_openai_vllm_stop_reason_reappends_the_stop_string() -> None:
    body = completion('<score>+40', finish_reason='stop', stop_reason='</score>')
    with serving(lambda n, b: Reply(body=body)) as (_, b):
        assert b.generate([query()])[0].text == '<score>+40</score>'


def test_openai_prefill_sends_a_partial_assistant_turn_and_reads_the_whole_answer() -> None:
    """vLLM's server continues the head and stops at '%' (kept in the text): the answer is
    whole again; a server that ignored the partial turn answers whole and is read as is."""
    replies = [completion('>+37.0%', stop_reason='%'), completion('<score>-5%</score>')]
    with serving(lambda n, body: Reply(body=replies[n])) as (server, b):
        b.set_prefill(True)
        first = b.generate([query()])[0]
        second = b.generate([query()])[0]
    assert (first.text, first.meta['early_stop']) == ('<score>+37.0%</score>', 1.0)
    assert (second.text, second.meta['early_stop']) == ('<score>-5%</score>', 0.0)
    body = server.requests[0].body
    assert body['messages'][-1] == {'role': 'assistant', 'content': '<score'}
    assert (body['continue_final_message'], body['add_generation_prompt'],
            body['include_stop_str_in_output']) == (True, False, True)
    assert body['stop'] == ['</score>', '%', '</']


def test_openai_prefill_off_sends_no_partial_turn() -> None:
    with serving(lambda n, body: Reply(body=completion('<score>+1%</score>')),
                 answer_prefill=False) as (server, b):
        b.generate([query()])
    body = server.requests[0].body
    assert [m['role'] for m in body['messages']] == ['system', 'user']
    assert 'continue_final_message' not in body and body['stop'] == ['</score>']


def test_openai_overload_is_retried_with_jittered_backoff_then_succeeds(
        caplog: pytest.LogCaptureFixture) -> None:
    replies = [Reply(503, b'{"error": "loading"}', headers={'Retry-After': '0.3'}),
               Reply(429, b'{}'), Reply(body=completion('<score>+3%'))]
    caplog.set_level(logging.WARNING)
    with serving(lambda n, body: replies[n], retry_delay_s=0.1) as (server, b):
        [answer] = b.generate([query()])
    assert answer.error is None and answer.text == '<score>+3%</score>'
    assert answer.meta['attempts'] == 3.0 and len(server.requests) == 3
    waits = [float(r.getMessage().rsplit('retrying in ', 1)[1].split()[0])
             for r in caplog.records if 'retrying in' in r.getMessage()]
    assert waits[0] == pytest.approx(0.3)                # the server's Retry-After
    assert 0.1 <= waits[1] <= 0.2                        # 0.2 s doubled, jittered by up to half


def test_openai_other_server_errors_are_final() -> None:
    statuses = [500, 502, 504, 408]
    with serving(lambda n, body: Reply(statuses[n], b'{"error": "engine died"}')) as (server, b):
        errors = [b.generate([query()])[0].error or '' for _ in statuses]
    assert [f'HTTP {s}' in e and '(after 1 attempt(s))' in e
            for s, e in zip(statuses, errors, strict=True)] == [True] * 4
    assert len(server.requests) == 4                     # none of them retried


def test_openai_a_body_cut_short_is_a_dropped_link_and_retried() -> None:
    replies = [Reply(503, b'{"error": "' + b'x' * 200 + b'"}', cut_short=True),
               Reply(body=completion('<score>+6%'), cut_short=True),
               Reply(body=completion('<score>+7%'))]
    with serving(lambda n, body: replies[n]) as (_, b):
        [answer] = b.generate([query()])
    assert answer.text == '<score>+7%</score>' and answer.meta['attempts'] == 3.0


def test_openai_connections_are_kept_alive_across_calls() -> None:
    with serving(lambda n, body: Reply(body=completion('<score>+1%')), max_workers=1) as (
            server, b):
        for _ in range(3):
            assert b.generate([query()])[0].error is None
    assert len(server.requests) == 3
    assert len({r.client_port for r in server.requests}) == 1     # one connection for all


def test_openai_persistent_failure_is_a_flagged_answer_not_a_fake_score() -> None:
    with serving(lambda n, body: Reply(503, b'down'), max_retries=3) as (server, b):
        [answer] = b.generate([query()])
    assert answer.text == '' and 'HTTP 503' in (answer.error or '')
    assert '(after 3 attempt(s))' in (answer.error or '') and len(server.requests) == 3


def test_openai_client_errors_and_malformed_bodies_are_final() -> None:
    replies = {0: Reply(400, b'{"error": "bad image"}'), 1: Reply(body=b'{"choices": [}'),
               2: Reply(body=b'{"choices": []}'), 3: Reply(body=completion('x')[:-1])}
    with serving(lambda n, body: replies[n]) as (server, b):
        errors = [b.generate([query()])[0].error or '' for _ in range(4)]
    assert 'HTTP 400' in errors[0] and 'bad image' in errors[0]
    assert all('malformed response' in e for e in errors[1:])
    assert len(server.requests) == 4                     # none of them retried


def test_openai_read_timeout_is_final_not_retried() -> None:
    with serving(lambda n, body: Reply(body=completion('<score>+1%'), delay_s=0.6),
                 timeout_s=0.15, max_retries=3) as (server, b):
        [answer] = b.generate([query()])
    assert answer.text == '' and 'timed out' in (answer.error or '').lower()
    assert answer.meta['attempts'] == 1.0 and len(server.requests) == 1


def test_openai_deadline_cuts_the_read_timeout_of_a_reading() -> None:
    with serving(lambda n, body: Reply(body=completion('<score>+1%'), delay_s=1.0),
                 timeout_s=30.0, deadline_s=0.2) as (server, b):
        [answer] = b.generate([query()])
    assert answer.text == '' and 'timed out' in (answer.error or '').lower()
    assert len(server.requests) == 1


def test_openai_unreachable_server_is_retried_until_it_answers() -> None:
    port = free_port()
    server = FakeOpenAI(lambda n, body: Reply(body=completion('<score>+4%')), port=port)
    later = threading.Timer(0.3, server.__enter__)
    later.start()
    try:
        with backend(f'http://127.0.0.1:{port}/v1', max_retries=100, retry_delay_s=0.05,
                     deadline_s=30.0) as b:
            [answer] = b.generate([query()])
    finally:
        later.join()
        server.__exit__()
    assert answer.text == '<score>+4%</score>' and answer.meta['attempts'] > 1.0


def test_openai_deadline_ends_the_retries_of_an_unreachable_server() -> None:
    with FakeOpenAI(lambda n, body: Reply()) as server:
        url = server.url
    with backend(url, max_retries=1000, retry_delay_s=0.01, deadline_s=0.3) as b:
        [answer] = b.generate([query()])
    assert 'ConnectError' in (answer.error or '')
    assert 1 < answer.meta['attempts'] < 1000


def test_openai_concurrency_is_bounded_across_callers() -> None:
    results: list[list] = []
    with serving(lambda n, body: Reply(body=completion('<score>+1%'), delay_s=0.05),
                 max_workers=2) as (server, b):
        threads = [threading.Thread(target=lambda: results.append(
            b.generate([query(base=i) for i in range(3)]))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert [len(r) for r in results] == [3, 3]
    assert all(a.error is None for r in results for a in r)
    assert len(server.requests) == 6 and server.peak_in_flight == 2


def test_openai_answers_keep_query_order() -> None:
    def respond(n: int, body: dict) -> Reply:
        red = decode(body['messages'][1]['content'][1]['image_url']['url'])[0, 0, 0]
        return Reply(body=completion(f'<score>+{int(red) // 20}%'),
                     delay_s=0.05 * (3 - int(red) // 20))
    with serving(respond, max_workers=4) as (_, b):
        texts = [a.text for a in b.generate([query(base=i) for i in range(4)])]
    assert texts == [f'<score>+{i}%</score>' for i in range(4)]


def test_openai_key_never_in_logs_errors_or_repr(caplog: pytest.LogCaptureFixture) -> None:
    def echo(n: int, body: dict) -> Reply:         # a server that echoes the key back
        auth = server.requests[n].headers['Authorization']
        return Reply(401, json.dumps({'error': f'invalid key: {auth}' + 'x' * 300}).encode())
    caplog.set_level(logging.DEBUG)
    with serving(echo) as (server, b):
        [answer] = b.generate([query()])
        text = repr(b) + str(vars(b)) + repr(b.config)
    assert 'HTTP 401' in (answer.error or '') and '***' in (answer.error or '')
    assert server.requests[0].headers['Authorization'] == f'Bearer {KEY}'
    assert KEY not in (answer.error or '') + caplog.text + text
    assert KEY[:8] not in (answer.error or '')          # not even a cut-off part of it
    assert 'GRM_TEST_KEY' in text                        # the variable's name is fine


def test_openai_without_key_sends_no_authorization(monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv('GRM_TEST_KEY')
    with serving(lambda n, body: Reply(body=completion('<score>0%'))) as (server, b):
        assert b.generate([query()])[0].text == '<score>0%</score>'
    assert 'Authorization' not in server.requests[0].headers
    assert 'GRM_TEST_KEY is not set' in caplog.text


def test_openai_invalid_task_fails_only_its_query_and_stop_is_sticky() -> None:
    with serving(lambda n, body: Reply(body=completion('<score>+2%'))) as (server, b):
        bad, good = b.generate([query(task='<image>'), query()])
        assert 'ConfigError' in (bad.error or '') and good.error is None
        b.request_stop()
        with pytest.raises(BackendError, match='stopped'):
            b.generate([query()])
        b.close()
        with pytest.raises(BackendError, match='closed'):
            b.generate([query()])
    assert len(server.requests) == 1


def test_openai_stop_ends_a_backoff_wait_at_once() -> None:
    with serving(lambda n, body: Reply(503, b'{}'), retry_delay_s=30.0, timeout_s=60.0) as (
            server, b):
        threading.Timer(0.2, b.request_stop).start()
        with pytest.raises(BackendStoppedError, match='stopped'):
            b.generate([query()])
    assert len(server.requests) == 1


def test_openai_cancel_is_per_call() -> None:
    """A cancel ends the calls in flight (on the wire or in a backoff) at once; a call made
    after it, concurrent with a cancelled one, runs normally."""
    def respond(n: int, body: dict) -> Reply:
        return Reply(body=completion('<score>+5%'), delay_s=0.5 if n == 0 else 0.0)
    outcome: list[object] = []
    with serving(respond, max_workers=2) as (server, b):
        first = threading.Thread(target=lambda: outcome.append(_raised(b, query())))
        first.start()
        wait_for(lambda: len(server.requests) == 1)
        b.cancel()
        first.join()
        [later] = b.generate([query(base=1)])        # while the first is still on the wire
    assert outcome == ['BackendStoppedError: cancelled']
    assert later.text == '<score>+5%</score>' and later.error is None


def _raised(b: OpenAIBackend, q: Query) -> str:
    try:
        b.generate([q])
    except BackendError as exc:
        return f'{type(exc).__name__}: {exc}'
    return 'answered'


def wait_for(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError('condition never held')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.parametrize('bad', [{'model': ''}, {'base_url': 'ftp://x'}, {'max_workers': 0},
                                 {'image_format': 'gif'}, {'timeout_s': 0},
                                 {'deadline_s': 0}, {'connect_timeout_s': -1}])
def test_openai_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ConfigError):
        OpenAIConfig(**{'model': 'm', **bad})


def test_openai_backend_encodes_each_keyed_image_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from robo_dopamine_ros.backends import openai_backend

    encoded: list[ImageKey] = []
    real = openai_backend.image_data_url

    def counting(image: KeyedImage, *args: object) -> str:
        encoded.append(image.key)
        return real(image, *args)

    monkeypatch.setattr(openai_backend, 'image_data_url', counting)
    first = query()
    shared = KeyedImage(ImageKey('ep', 'slot0', 0), first.images[0].pixels)
    second = Query(TASK, (shared, *query(base=1).images[1:]), Mode.FORWARD)
    with serving(lambda n, body: Reply(200, completion('<score>+1%</score>')),
                 image_format='png') as (server, b):
        b.generate([first, first])
        b.generate([second])
        bodies = [r.body for r in server.requests]
    assert len(encoded) == 8 + 7            # the repeated query and slot 0 came from the cache
    urls = [[c['image_url']['url'] for c in body['messages'][1]['content']
             if c['type'] == 'image_url'] for body in bodies]
    assert urls[0] == urls[1] and urls[2][0] == urls[0][0]
    np.testing.assert_array_equal(decode(urls[2][1]), query(base=1).images[1].pixels)
