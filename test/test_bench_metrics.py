"""Benchmark metrics against hand-computed values, and the query dispatcher."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from robo_dopamine_ros.backends.batching import BatchDispatcher, EpisodeBackend
from robo_dopamine_ros.backends.scripted import ScriptedBackend
from robo_dopamine_ros.core.errors import BackendError
from robo_dopamine_ros.core.types import ImageKey, KeyedImage, Mode, Query
from robo_dopamine_ros.evaluation.metrics import (
    auc,
    convention_means,
    hop_signs,
    kendall_tau,
    mean,
    ratio,
    spearman,
    voc,
)


def test_metrics_voc_is_spearman_against_time_order() -> None:
    # ranks 1 3 2 4 vs 1 2 3 4: sum d^2 = 2, rho = 1 - 6*2 / (4*15) = 0.8
    assert voc([0.1, 0.4, 0.2, 0.9]) == pytest.approx(0.8)
    assert voc([0.9, 0.5, 0.1]) == pytest.approx(-1.0)
    # ties get mean ranks: x 1 2 3, y 1.5 1.5 3 -> rho = 0.866025
    assert voc([0.2, 0.2, 0.7]) == pytest.approx(np.sqrt(3) / 2)


@pytest.mark.parametrize('curve', [[], [0.5], [0.3, 0.3, 0.3]])
def test_metrics_voc_is_zero_when_undefined(curve: list[float]) -> None:
    assert voc(curve) == 0.0 and kendall_tau(curve) == 0.0


def test_metrics_kendall_tau_b() -> None:
    # pairs: 5 concordant, 1 discordant -> (5 - 1) / 6
    assert kendall_tau([0.1, 0.4, 0.2, 0.9]) == pytest.approx(4 / 6)
    # one tie in y: 2 concordant of 3 pairs, tau-b = 2 / sqrt(3 * 2)
    assert kendall_tau([0.1, 0.1, 0.5]) == pytest.approx(2 / np.sqrt(6))


def test_metrics_hop_sign_counts_zero_and_missing_as_wrong() -> None:
    assert hop_signs([0.2, -0.1, None, 0.0, 0.5], +1) == (2, 5)
    assert hop_signs([-0.3, 0.1, None], -1) == (1, 3)
    assert hop_signs([], +1) == (0, 0)


def test_metrics_failed_episode_conventions() -> None:
    # GRM script: failed episodes count as 0 in the mean; API script: skipped
    assert convention_means([1.0, 0.5], failed=2) == {'grm': 0.375, 'api': 0.75}
    assert convention_means([], failed=3) == {'grm': 0.0, 'api': 0.0}
    assert convention_means([0.25], failed=0) == {'grm': 0.25, 'api': 0.25}
    assert mean([0.5, None, 1.0]) == 0.75 and mean([None]) is None
    assert ratio(3, 4) == 0.75 and ratio(0, 0) is None


def q(value: int, episode: str = 'ep') -> Query:
    images = tuple(KeyedImage(ImageKey(episode, f'r{i}', value), np.full((28, 28, 3), value,
                                                                         np.uint8))
                   for i in range(8))
    return Query('t', images, Mode.INCREMENTAL)


def test_dispatcher_merges_waiting_workers_into_one_batch() -> None:
    backend = ScriptedBackend()
    dispatcher = BatchDispatcher(backend, max_queries=8)
    barrier = threading.Barrier(3)
    answers: dict[int, list] = {}

    def work(i: int) -> None:
        with dispatcher.worker():
            barrier.wait()                   # all registered before anyone asks
            answers[i] = dispatcher.generate([q(10 * i), q(10 * i + 1)])[0]
    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [len(b) for b in backend.batches] == [6]
    for i, got in answers.items():
        assert [a.text for a in got] == [backend.script(x) for x in (q(10 * i),
                                                                     q(10 * i + 1))]


def test_dispatcher_respects_the_batch_limit_and_hands_out_errors() -> None:
    backend = ScriptedBackend()
    dispatcher = BatchDispatcher(backend, max_queries=3)
    answers, seconds = dispatcher.generate([q(1), q(2), q(3), q(4)])   # one request: whole
    assert len(answers) == 4 and seconds >= 0.0 and [len(b) for b in backend.batches] == [4]

    class Broken(ScriptedBackend):
        def generate(self, queries):  # type: ignore[override]
            raise BackendError('stopped')
    with pytest.raises(BackendError, match='stopped'):
        BatchDispatcher(Broken(), 4).generate([q(1)])
    aborted = BatchDispatcher(backend, 4)
    aborted.abort()
    with pytest.raises(BackendError, match='aborted'):
        aborted.generate([q(1)])


def test_episode_backend_reuses_identical_questions_only_when_asked() -> None:
    backend = ScriptedBackend()
    episode = EpisodeBackend(BatchDispatcher(backend, 8))
    first = episode.generate([q(5, 'pass-a')])
    assert episode.generate([q(5, 'pass-b')])[0].text == first[0].text
    assert (episode.sent, episode.reused) == (2, 0)          # upstream passes never reuse
    episode.reuse = True
    again = episode.generate([q(5, 'pass-c'), q(6, 'pass-c')])  # same pixels, other keys
    assert again[0].text == first[0].text
    assert (episode.sent, episode.reused) == (3, 1) and episode.model_id == backend.model_id


def test_metrics_spearman_between_curves_and_auc_by_hand() -> None:
    # ranks 1 2 3 4 vs 2 1 4 3: sum d^2 = 4, rho = 1 - 6*4 / (4*15) = 0.6
    assert spearman([0.1, 0.2, 0.3, 0.4], [0.2, 0.1, 0.4, 0.3]) == pytest.approx(0.6)
    assert spearman([0.5, 0.5, 0.5], [0.1, 0.2, 0.3]) == 0.0       # constant: undefined
    # pairs (0.9>0.1) (0.9>0.5) (0.5=0.5: half) (0.5>0.1) of 4 -> 3.5 / 4
    assert auc([0.9, 0.5], [0.1, 0.5]) == pytest.approx(0.875)
    assert auc([], [0.1]) is None
