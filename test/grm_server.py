"""An OpenAI-compatible chat-completions server on 127.0.0.1 that answers with a real GRM loaded
in-process (a ``TransformersBackend``): a TEST DOUBLE of ``vllm serve`` for fleet tests, never a
product server.

Each request is turned back into the query the client asked: the text parts must be the prompt
segments of one of the known tasks (the prompt does not depend on the mode), the eight images are
decoded from their data URLs. The answer is the backend's, so a client's readings can be compared
with the same backend run in-process.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

import numpy as np
from openai_server import KeepAliveServer, completion
from PIL import Image

from robo_dopamine_ros.backends.decoding import STOP_STRING
from robo_dopamine_ros.core.prompt import PromptVariant, prompt_segments
from robo_dopamine_ros.core.types import GrmBackend, ImageKey, KeyedImage, Mode, Query
from robo_dopamine_ros.pipeline.model import WARM_UP_TASK


class GrmServer:
    """Serves ``backend`` on ``port`` (0: any free one) until :meth:`stop`; restartable."""

    def __init__(self, backend: GrmBackend, tasks: Sequence[str], port: int = 0) -> None:
        self.backend = backend
        self.tasks = tuple(tasks)
        self.port = port
        self.requests = 0
        self._lock = threading.Lock()
        self._server: KeepAliveServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}/v1'

    def query(self, body: dict[str, Any]) -> Query:
        """The query a chat-completions body asks (its task found among :attr:`tasks`)."""
        content = body['messages'][-1]['content']
        texts = [c['text'] for c in content if c['type'] == 'text']
        images = tuple(
            KeyedImage(ImageKey('served', f'slot{i}', 0), _decode(c['image_url']['url']))
            for i, c in enumerate(c for c in content if c['type'] == 'image_url'))
        for task in (WARM_UP_TASK, *self.tasks):
            for variant in PromptVariant:
                if prompt_segments(task, variant) == texts:
                    return Query(task, images, Mode.INCREMENTAL, variant)
        raise ValueError('the prompt is not one of the known tasks')

    def start(self) -> GrmServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'       # kept alive, as vLLM's server

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers['Content-Length']))
                try:
                    text = server.backend.generate([server.query(json.loads(raw))])[0].text
                    # As vLLM: the stop string is dropped and finish_reason says it matched.
                    stopped = text.endswith(STOP_STRING)
                    status, body = 200, completion(text.removesuffix(STOP_STRING),
                                                   'stop' if stopped else 'length')
                except (ValueError, KeyError) as exc:
                    status, body = 400, json.dumps({'error': str(exc)}).encode()
                with server._lock:
                    server.requests += 1
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                """Quiet."""

        self._server = KeepAliveServer(('127.0.0.1', self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,),
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)


def _decode(url: str) -> np.ndarray:
    data = base64.b64decode(url.split(',', 1)[1])
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert('RGB'), dtype=np.uint8).copy()
