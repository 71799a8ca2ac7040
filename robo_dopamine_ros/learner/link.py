"""Join the reward node's ``Reward`` messages to a learner's own transitions, by stamps.

An RL node acts on observations stamped with the cameras' header times; the reward node scores
synchronized samples of the same cameras and publishes one ``Reward`` per scored sample, its
BEFORE and AFTER stamps naming the samples it was computed from. :class:`RewardLink` keeps the
learner's observation stamps of the current episode and answers, in order, one
:class:`LinkedReward` per learner transition ``k`` (observation ``k-1 -> k``):

* ``REWARD``: a valid reward whose AFTER stamp is observation ``k`` (within ``tolerance_ns``).
  Its BEFORE may be an earlier observation than ``k-1``: after a held (invalid) sample the
  engine's next transition starts at the last unheld sample, and a node scoring every n-th
  sample spans n learner steps. ``span_start`` says where the span begins, ``gamma`` is the
  node's discount over the whole span (``reward`` is the SMDP reward of the macro-transition),
  and ``step_reward`` re-discounts it to the last step alone (:func:`step_reward`): a learner
  doing one-step updates with its own per-step γ would otherwise apply the discount of the
  span's earlier steps twice (once counting its own steps, once inside the reward's γ).
* ``INVALID``: the node flagged it invalid (held or partial progress): never learn from it.
* ``SPANNED``: no reward of its own; a later reward's span covers it.
* ``MISSING``: nothing arrived within ``wait_ns`` of the transition (bounded wait); the learner
  must not read it as 0.
* ``AFTER_SUCCESS``: the episode reached success before; outside the episodic MDP.

Terminal rule: :func:`..core.shaping.transition_phase`, the rule the engine pays ``r_gold``
by — the first transition reaching success is ``terminal`` (the learner's episode ends there);
every later one is after-success, never learned from, whatever its reward. Episode events:
START / RESET / TASK_CHANGED / GOAL_CHANGED name the node's current episode (rewards of other
episodes are ignored, whenever they arrive: the two topics are not ordered), DONE and
TASK_STATUS are kept for the learner to read (``done_event``, ``task_status``). Rewards may
arrive late, twice or out of order: they are kept (bounded) until their transition is asked.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..core.errors import ConfigError
from ..core.shaping import Phase, transition_phase

#: Events that open a node episode (msg/EpisodeEvent.msg names).
OPENING_EVENTS = ('START', 'RESET', 'TASK_CHANGED', 'GOAL_CHANGED')


def stamp_ns(stamp: Any) -> int:
    """A ROS time (``sec``, ``nanosec``) as integer nanoseconds, the unit transitions join in."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


@dataclass(frozen=True)
class RewardRecord:
    """The parts of a ``Reward`` message a learner keeps, without ROS types."""

    episode_id: str
    step: int
    before_ns: int
    after_ns: int
    reward: float
    gamma: float
    done: bool
    terminal: bool
    valid: bool
    reason: str = ''
    potential_before: float = 0.0
    r_gold: float = 0.0

    @classmethod
    def from_msg(cls, msg: Any) -> RewardRecord:
        """Copy a received ``Reward`` (rclpy messages are mutable and reused by some executors)."""
        return cls(msg.episode_id, msg.step, stamp_ns(msg.before_stamp),
                   stamp_ns(msg.header.stamp), msg.reward, msg.gamma, msg.done, msg.terminal,
                   msg.valid, msg.reason, msg.potential_before, msg.r_gold)


def match_transition(rewards: Iterable[RewardRecord], before_ns: int, after_ns: int,
                     tolerance_ns: int) -> RewardRecord | None:
    """The reward for a learner's transition ``before -> after``, joined by stamps.

    Both stamps must agree within ``tolerance_ns`` (camera stamps of one synchronized set differ
    by up to the node's sync slop). Of several candidates the closest wins (smallest worse-of-
    the-two difference); ``None`` when none agrees: "no reward yet", never zero.
    """
    best: RewardRecord | None = None
    best_error = tolerance_ns + 1
    for record in rewards:
        error = max(abs(record.before_ns - before_ns), abs(record.after_ns - after_ns))
        if error < best_error:
            best, best_error = record, error
    return best


def step_reward(reward: float, r_gold: float, potential_before: float, gamma_span: float,
                gamma_last: float) -> float:
    """A span's shaped reward with the discount of its last step only (module docstring).

    ``reward = r_gold + γ_span·Φ_next - Φ(s)``, where ``Φ_next`` is what the terminal rule put
    there (the next potential, or 0 at a terminal transition under ``ZERO``), so
    ``Φ_next = (reward - r_gold + Φ(s)) / γ_span`` and the per-step reward is
    ``r_gold + γ_last·Φ_next - Φ(s)``; equal to ``reward`` when the span is one step.
    """
    next_potential = (reward - r_gold + potential_before) / gamma_span
    return reward + (gamma_last - gamma_span) * next_potential


class LinkStatus(str, enum.Enum):
    """How a learner transition was resolved (module docstring)."""

    REWARD = 'reward'
    INVALID = 'invalid'
    SPANNED = 'spanned'
    MISSING = 'missing'
    AFTER_SUCCESS = 'after_success'


@dataclass(frozen=True)
class LinkedReward:
    """What the learner gets for its transition ``index`` (observation ``index-1 -> index``)."""

    index: int
    status: LinkStatus
    reward: float = 0.0         # the node's reward over the span (0 unless REWARD)
    gamma: float = 1.0          # the node's discount over the span
    span_start: int = -1        # observation the span begins at (index - 1: one step)
    step_reward: float = 0.0    # ``reward`` re-discounted to the last step (0 unless REWARD)
    terminal: bool = False      # the first success: the learner's episode ends here
    record: RewardRecord | None = None

    @property
    def learn(self) -> bool:
        """Only a valid reward before or at the first success is learned from."""
        return self.status is LinkStatus.REWARD


class RewardLink:
    """The learner's transitions of one episode and the rewards that arrived (module doc)."""

    def __init__(self, tolerance_ns: int, wait_ns: int, memory: int = 512) -> None:
        if tolerance_ns < 0 or wait_ns < 0 or memory < 1:
            raise ConfigError(f'need tolerance_ns, wait_ns >= 0 and memory >= 1, got '
                              f'{tolerance_ns!r}, {wait_ns!r}, {memory!r}')
        self.tolerance_ns, self.wait_ns = tolerance_ns, wait_ns
        self.records: deque[RewardRecord] = deque(maxlen=memory)
        self.node_episode: str | None = None
        self.done_event = False
        self.task_status = ''
        self._stamps: list[int] = []
        self._made_at: list[int] = []
        self._next = 1
        self._succeeded = False

    def begin(self, stamp_ns: int, now_ns: int) -> None:
        """The learner's episode starts at an observation with this stamp (its START sample)."""
        self._stamps, self._made_at = [int(stamp_ns)], [int(now_ns)]
        self._next, self._succeeded, self.done_event = 1, False, False

    def step(self, stamp_ns: int, now_ns: int) -> int:
        """The learner made a transition to an observation with this stamp; returns its index."""
        if not self._stamps:
            raise ConfigError('call begin() with the episode start observation first')
        if stamp_ns <= self._stamps[-1]:
            raise ConfigError(f'observation stamps must increase: {stamp_ns} after '
                              f'{self._stamps[-1]}')
        self._stamps.append(int(stamp_ns))
        self._made_at.append(int(now_ns))
        return len(self._stamps) - 1

    def add(self, record: RewardRecord) -> None:
        """A reward arrived (any order; callbacks only enqueue)."""
        self.records.append(record)

    def event(self, kind: str, episode_id: str, detail: str = '') -> None:
        """An ``~/episode`` event, by its constant's name (``'RESET'``, ``'DONE'``, ...)."""
        if kind in OPENING_EVENTS:
            self.node_episode = episode_id
        elif kind == 'DONE' and episode_id == self.node_episode:
            self.done_event = True
        elif kind == 'TASK_STATUS' and episode_id == self.node_episode:
            self.task_status = detail.split(':', 1)[0]

    def poll(self, now_ns: int) -> list[LinkedReward]:
        """The transitions resolved since the last call, in order; waits past ``wait_ns`` at
        the first unresolved one are ``MISSING``."""
        out: list[LinkedReward] = []
        while self._next < len(self._stamps):
            k = self._next
            linked = self._resolve(k)
            if linked is None:
                if now_ns - self._made_at[k] <= self.wait_ns:
                    break
                linked = LinkedReward(k, LinkStatus.MISSING, span_start=k - 1)
            out.append(linked)
            self._next += 1
        return out

    # -- internals -------------------------------------------------------------------------

    def _current(self) -> list[RewardRecord]:
        return [r for r in self.records
                if self.node_episode is None or r.episode_id == self.node_episode]

    def _index(self, stamp: int, below: int) -> int | None:
        """The observation before ``below`` whose stamp is closest to ``stamp`` (in tolerance)."""
        best, error = None, self.tolerance_ns + 1
        for i in range(below):
            e = abs(self._stamps[i] - stamp)
            if e < error:
                best, error = i, e
        return best

    def _resolve(self, k: int) -> LinkedReward | None:
        records = self._current()
        ending = [r for r in records if abs(r.after_ns - self._stamps[k]) <= self.tolerance_ns]
        spans = [(abs(r.after_ns - self._stamps[k]), start, r) for r in ending
                 if (start := self._index(r.before_ns, k)) is not None]
        if spans:
            _, start, record = min(spans, key=lambda span: span[0])
            return self._linked(k, record, start)
        for r in records:
            later = self._index(r.after_ns, len(self._stamps))
            first = self._index(r.before_ns, k)
            if later is not None and later > k and first is not None:
                return LinkedReward(k, LinkStatus.SPANNED, span_start=first)
        return None

    def _linked(self, k: int, record: RewardRecord, start: int) -> LinkedReward:
        phase = transition_phase(self._succeeded or (record.done and not record.terminal),
                                 record.done)
        terminal = phase is Phase.TERMINAL
        self._succeeded = self._succeeded or phase is not Phase.RUNNING
        if phase is Phase.AFTER_SUCCESS:
            return LinkedReward(k, LinkStatus.AFTER_SUCCESS, gamma=record.gamma,
                                span_start=start, record=record)
        if not record.valid:
            return LinkedReward(k, LinkStatus.INVALID, gamma=record.gamma, span_start=start,
                                terminal=terminal, record=record)
        span_ns = self._stamps[k] - self._stamps[start]
        last_ns = self._stamps[k] - self._stamps[k - 1]
        gamma_last = record.gamma ** (last_ns / span_ns) if span_ns > 0 else record.gamma
        return LinkedReward(k, LinkStatus.REWARD, record.reward, record.gamma, start,
                            step_reward(record.reward, record.r_gold, record.potential_before,
                                        record.gamma, gamma_last), terminal, record)
