"""Synthetic three-camera manipulation episodes with known ground-truth progress.

Real robot bags with per-frame progress labels are rare, and the node, bag replay and benchmark
need episodes whose correct answer is known. This renderer draws a pick-and-place episode (a
gripper moves a block onto a target square) from a front camera and two wrist cameras.

The scene is a pure function of one task state ``s`` in [0, 1] (reach, grasp, lift, carry,
place, release, retreat), and ``s`` *is* the ground-truth progress. Progress is therefore
visible only through the scene (where the gripper and block are, whether the fingers are
closed), never as text or a bar. Outcomes are state trajectories over time: ``success`` goes to
1, ``stall`` freezes midway, ``regress`` carries the block back, and ``fail`` misses the grasp
(the fingers close beside the block; the attempt earns no grasp credit, so progress stays at the
reach value and then falls as the gripper retreats).

Lighting, colours, positions and clutter are drawn from the seed, and rendering is deterministic
for a seed. Drawing uses OpenCV primitives on a pre-rendered static background, so a 90-frame
320x240 episode renders in a fraction of a second.
"""

from __future__ import annotations

import enum
import itertools
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .core.errors import ConfigError, coerce_enum
from .core.names import (
    CAMERA_FILES,
    CAMERAS,
    GOAL_FILE,
    GROUND_TRUTH_FILE,
    KEYFRAMES_FILE,
    TASK_FILE,
)

#: A fixed, recognisable default start time (2023-11-14T22:13:20Z) so stamps are never zero.
DEFAULT_START_NS = 1_700_000_000_000_000_000


class Outcome(str, enum.Enum):
    """How the episode ends; each is a different ground-truth progress shape."""

    SUCCESS = 'success'   # monotone to 1.0, then holds
    FAIL = 'fail'         # grasp missed: at most the reach value (0.25), then falls
    STALL = 'stall'       # rises to about half, then freezes
    REGRESS = 'regress'   # rises to about 0.7, then the block is carried back


@dataclass(frozen=True)
class EpisodeSpec:
    """What to render. Everything random (layout, colours, light, clutter, timing) is seeded.

    Attributes:
        seed: drives every random choice; the same spec renders identical pixels.
        num_frames: frames per camera (>= 2).
        fps: frame rate; stamps are ``start_ns + round(i * 1e9 / fps)``.
        size: image ``(width, height)`` of every camera.
        outcome: an :class:`Outcome` or its value.
        start_ns: stamp of frame 0 (ROS time, ns).
        noise_std: sensor noise (std of a Gaussian, in 8-bit levels); 0 disables it. Keeps
            frames of a frozen scene from being byte-identical, as with a real camera.
    """

    seed: int = 0
    num_frames: int = 90
    fps: float = 15.0
    size: tuple[int, int] = (320, 240)
    outcome: Outcome | str = Outcome.SUCCESS
    start_ns: int = DEFAULT_START_NS
    noise_std: float = 2.0

    def __post_init__(self) -> None:
        coerce_enum(self, 'outcome', Outcome)
        if self.num_frames < 2:
            raise ConfigError(f'num_frames must be >= 2, got {self.num_frames!r}')
        if not self.fps > 0:
            raise ConfigError(f'fps must be > 0, got {self.fps!r}')
        w, h = self.size
        if w < 32 or h < 24:
            raise ConfigError(f'size must be at least (32, 24), got {self.size!r}')
        if self.start_ns <= 0:
            raise ConfigError(f'start_ns must be > 0 (a zero stamp is invalid), '
                              f'got {self.start_ns!r}')
        if self.noise_std < 0:
            raise ConfigError(f'noise_std must be >= 0, got {self.noise_std!r}')


@dataclass(frozen=True, eq=False)
class SyntheticEpisode:
    """A rendered episode.

    Attributes:
        spec: what was rendered.
        task: the instruction, e.g. ``'put the red block on the blue square'``.
        frames: camera name (:data:`CAMERAS`) -> RGB uint8 array ``(num_frames, h, w, 3)``.
        stamps_ns: per-frame stamps.
        progress: per-frame ground-truth progress in [0, 1].
        keyframes: sub-task segments in upstream ``annotated_keyframes.json`` form (0-based,
            contiguous, covering every frame; upstream spells the key ``anotation``).
        goal: the success end state seen by the front camera (RGB uint8 ``(h, w, 3)``).
    """

    spec: EpisodeSpec
    task: str
    frames: dict[str, np.ndarray]
    stamps_ns: tuple[int, ...]
    progress: tuple[float, ...]
    keyframes: list[dict[str, Any]]
    goal: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return len(self.stamps_ns)

    def ground_truth(self) -> dict[str, Any]:
        """JSON-able labels (no pixels) to store beside a bag or a video of this episode."""
        spec = self.spec
        return {
            'task': self.task,
            'outcome': Outcome(spec.outcome).value,
            'seed': spec.seed,
            'fps': spec.fps,
            'size': list(spec.size),
            'stamps_ns': list(self.stamps_ns),
            'progress': list(self.progress),
            'keyframes': self.keyframes,
        }

    def write_labels(self, folder: Path, **extra: Any) -> None:
        """Write the labels beside the frames: ``ground_truth.json`` (with ``extra``), the goal
        image, and upstream's ``annotated_keyframes.json`` and ``task_instruction.json``."""
        from PIL import Image

        def dump(name: str, data: object) -> None:
            (folder / name).write_text(json.dumps(data, indent=1) + '\n', encoding='utf-8')

        dump(GROUND_TRUTH_FILE, {**self.ground_truth(), **extra})
        dump(KEYFRAMES_FILE, self.keyframes)
        dump(TASK_FILE, [self.task])
        Image.fromarray(self.goal).save(folder / GOAL_FILE)


# --- Task state -> scene --------------------------------------------------------------------
# Sub-task boundaries on the state axis; the names become keyframe annotations.
_GRASP, _LIFT, _CARRY, _PLACE, _RELEASE, _RETREAT = 0.25, 0.40, 0.50, 0.75, 0.85, 0.93
_PHASES: tuple[tuple[str, float], ...] = (
    ('reach the {obj}', 0.0), ('grasp the {obj}', _GRASP), ('lift the {obj}', _LIFT),
    ('carry it to the {zone}', _CARRY), ('place it on the {zone}', _PLACE),
    ('release it', _RELEASE), ('retreat', _RETREAT))
_FAIL_CAP = _GRASP     # a missed grasp earns the reach only

_OBJ = 0.07            # block edge, table units (the table is 1 x 1)
_GAP_OPEN = 0.12       # finger gap when fully open
_Z_CARRY = 0.22        # gripper height while carrying
_Z_HOME = 0.34
_Z_RETREAT = 0.30
_MISS_DX = 0.11        # lateral offset of a missed grasp
_FRONT_ZOOM = 1.15     # front camera: image widths per table width at the near edge
_WRIST_UP = 0.25       # wrist cameras: height above the fingertips

_COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ('red', (205, 40, 35)), ('green', (40, 165, 60)), ('blue', (35, 80, 210)),
    ('yellow', (230, 200, 30)), ('orange', (240, 130, 20)), ('purple', (135, 55, 180)))


@dataclass(frozen=True)
class _State:
    grip: tuple[float, float, float]  # fingertip centre (x, y, z) in table units
    gap: float                        # inner gap between the fingers
    obj: tuple[float, float, float]   # block centre of the bottom face
    held: bool


def _ease(u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    return u * u * (3.0 - 2.0 * u)


def _lerp(a: tuple[float, ...], b: tuple[float, ...], u: float) -> tuple[float, ...]:
    return tuple(x + (y - x) * u for x, y in zip(a, b, strict=True))


@dataclass(frozen=True)
class _Scene:
    """The seeded layout and look of one episode."""

    obj_start: tuple[float, float]
    target: tuple[float, float]
    obj_name: str
    obj_rgb: tuple[int, int, int]
    zone_name: str
    zone_rgb: tuple[int, int, int]
    table_rgb: tuple[int, int, int]
    wall_rgb: tuple[int, int, int]
    floor_rgb: tuple[int, int, int]
    light: tuple[float, float, float]    # per-channel gain (brightness x tint)
    light_dir: float                     # -1 (from the left) .. 1 (from the right)
    clutter: tuple[tuple[str, float, float, float, tuple[int, int, int]], ...]
    miss: bool

    def lit(self, rgb: tuple[int, int, int], shade: float = 1.0) -> tuple[int, int, int]:
        return tuple(int(min(255.0, c * g * shade)) for c, g in zip(rgb, self.light,
                                                                   strict=True))

    @property
    def task(self) -> str:
        return f'put the {self.obj_name} block on the {self.zone_name} square'

    def state(self, s: float) -> _State:
        """The scene at task state ``s`` (the ground-truth progress, before the fail cap)."""
        ox, oy = self.obj_start
        tx, ty = self.target
        grasp_x = ox + (_MISS_DX if self.miss else 0.0)
        z_grasp = _OBJ / 2
        held_gap = 0.0 if self.miss else _OBJ
        home = (0.5, 0.30, _Z_HOME)
        if s < _GRASP:                                 # reach: over, then down
            u = s / _GRASP
            x, y = _lerp(home[:2], (grasp_x, oy), _ease(u / 0.6))
            z = home[2] + (z_grasp - home[2]) * _ease((u - 0.3) / 0.7)
            return _State((x, y, z), _GAP_OPEN, (ox, oy, 0.0), False)
        if s < _LIFT:                                  # grasp: close the fingers
            gap = _GAP_OPEN + (held_gap - _GAP_OPEN) * _ease((s - _GRASP) / (_LIFT - _GRASP))
            return _State((grasp_x, oy, z_grasp), gap, (ox, oy, 0.0), False)
        if s < _CARRY:                                 # lift
            z = z_grasp + (_Z_CARRY - z_grasp) * _ease((s - _LIFT) / (_CARRY - _LIFT))
            grip = (ox, oy, z)
        elif s < _PLACE:                               # carry
            x, y = _lerp((ox, oy), (tx, ty), _ease((s - _CARRY) / (_PLACE - _CARRY)))
            grip = (x, y, _Z_CARRY)
        elif s < _RELEASE:                             # place
            u = _ease((s - _PLACE) / (_RELEASE - _PLACE))
            grip = (tx, ty, _Z_CARRY + (z_grasp - _Z_CARRY) * u)
        else:                                          # release (open), then retreat (up)
            gap = _OBJ + (_GAP_OPEN - _OBJ) * _ease((s - _RELEASE) / (_RETREAT - _RELEASE))
            z = z_grasp + (_Z_RETREAT - z_grasp) * _ease((s - _RETREAT) / (1.0 - _RETREAT))
            return _State((tx, ty, z), gap, (tx, ty, 0.0), False)
        return _State(grip, _OBJ, (grip[0], grip[1], grip[2] - z_grasp), True)


def _make_scene(rng: np.random.Generator, miss: bool) -> _Scene:
    obj_i, zone_i = rng.choice(len(_COLOURS), size=2, replace=False)
    gain = rng.uniform(0.75, 1.15)
    tint = rng.uniform(0.9, 1.1, size=3)
    table = tuple(int(v) for v in rng.integers((120, 90, 60), (200, 170, 140)))
    wall = tuple(int(v) for v in rng.integers(150, 230, size=3))
    floor = tuple(int(v) for v in rng.integers(50, 110, size=3))
    clutter = []
    for _ in range(int(rng.integers(2, 5))):
        # Keep clutter off the pick-and-place path (y in 0.35..0.7): near or far strip only.
        y = rng.uniform(0.08, 0.25) if rng.random() < 0.5 else rng.uniform(0.8, 0.92)
        _, rgb = _COLOURS[int(rng.integers(len(_COLOURS)))]
        clutter.append((('disc', 'box')[int(rng.integers(2))], float(rng.uniform(0.08, 0.92)),
                        float(y), float(rng.uniform(0.02, 0.035)),
                        tuple(int(c * 0.8) for c in rgb)))
    return _Scene(
        obj_start=(float(rng.uniform(0.18, 0.35)), float(rng.uniform(0.42, 0.62))),
        target=(float(rng.uniform(0.65, 0.82)), float(rng.uniform(0.42, 0.62))),
        obj_name=_COLOURS[obj_i][0], obj_rgb=_COLOURS[obj_i][1],
        zone_name=_COLOURS[zone_i][0], zone_rgb=_COLOURS[zone_i][1],
        table_rgb=table, wall_rgb=wall, floor_rgb=floor,
        light=tuple(float(gain * t) for t in tint), light_dir=float(rng.uniform(-1.0, 1.0)),
        clutter=tuple(clutter), miss=miss)


# --- Outcome -> state trajectory ------------------------------------------------------------
def _trajectory(outcome: Outcome, n: int, rng: np.random.Generator) -> np.ndarray:
    """Per-frame task state: knots (time fraction, state) joined by monotone ramps whose
    speed varies randomly, so progress is not a straight line in time."""
    if outcome is Outcome.SUCCESS:
        knots = [(0.0, 0.0), (rng.uniform(0.78, 0.88), 1.0), (1.0, 1.0)]
    elif outcome is Outcome.FAIL:   # reach, close on nothing, hold, back off
        knots = [(0.0, 0.0), (0.4, 0.38), (0.5, 0.38), (0.8, 0.1), (1.0, 0.1)]
    elif outcome is Outcome.STALL:
        plateau = rng.uniform(0.5, 0.6)
        knots = [(0.0, 0.0), (0.45, plateau), (1.0, plateau)]
    else:
        knots = [(0.0, 0.0), (0.5, 0.7), (0.9, 0.2), (1.0, 0.2)]
    s = np.zeros(n, dtype=np.float64)
    for (t0, a), (t1, b) in itertools.pairwise(knots):
        f0, f1 = round(t0 * (n - 1)), round(t1 * (n - 1))
        if f1 <= f0:
            continue
        steps = np.cumsum(rng.uniform(0.4, 1.6, size=f1 - f0))
        s[f0 + 1:f1 + 1] = a + (b - a) * steps / steps[-1]
    return np.clip(s, 0.0, 1.0)


def _keyframes(states: np.ndarray, outcome: Outcome, scene: _Scene) -> list[dict[str, Any]]:
    """Segments from the first frame reaching each sub-task, up to the peak state; after the
    peak a non-success episode gets one segment saying what went wrong. Sub-tasks crossed
    within one frame keep the name of the last one."""
    n = len(states)
    peak = n - 1 if outcome is Outcome.SUCCESS else int(np.argmax(states))
    names = [name.format(obj=f'{scene.obj_name} block', zone=f'{scene.zone_name} square')
             for name, _ in _PHASES]
    starts: list[tuple[str, int]] = []
    for name, (_, begin) in zip(names, _PHASES, strict=True):
        hits = np.nonzero(states[:peak + 1] >= begin)[0]
        if not hits.size:
            break
        starts.append((name, int(hits[0])))
    if outcome is not Outcome.SUCCESS and peak < n - 1:
        tail = {Outcome.FAIL: 'retreat without the block', Outcome.STALL: 'no progress',
                Outcome.REGRESS: 'carry the block back'}[outcome]
        starts.append((tail, peak))
    merged: list[tuple[str, int]] = []
    for name, start in starts:
        if merged and merged[-1][1] == start:
            merged[-1] = (name, start)
        else:
            merged.append((name, start))
    return [{'anotation': name, 'start_frame_id': start,
             'end_frame_id': merged[i + 1][1] if i + 1 < len(merged) else n - 1}
            for i, (name, start) in enumerate(merged)]


# --- Rendering ------------------------------------------------------------------------------
class _Renderer:
    """Draws the three cameras for one scene; the static background is rendered once."""

    def __init__(self, scene: _Scene, size: tuple[int, int], noise_std: float,
                 rng: np.random.Generator) -> None:
        import cv2

        self._cv2 = cv2
        self.scene = scene
        self.w, self.h = size
        self.front_bg = self._front_background()
        self.table = scene.lit(scene.table_rgb)
        self.stripe = scene.lit(scene.table_rgb, 0.85)
        self.floor = scene.lit(scene.floor_rgb)
        # One noise buffer read at a random offset per frame: fresh-looking noise at the cost
        # of a view, no per-frame random numbers.
        self.noise: tuple[np.ndarray, np.ndarray] | None = None
        if noise_std > 0:
            buf = np.clip(np.rint(rng.normal(0.0, noise_std, size=4 * self.h * self.w * 3)),
                          -255, 255)
            self.noise = (np.maximum(buf, 0).astype(np.uint8),
                          np.maximum(-buf, 0).astype(np.uint8))

    # Front camera: a fixed oblique view of the table.
    def _project(self, x: float, y: float, z: float) -> tuple[int, int]:
        scale = 0.72 + 0.28 * y
        top, bottom = 0.40 * self.h, 0.93 * self.h
        u = self.w / 2 + (x - 0.5) * self.w * _FRONT_ZOOM * scale
        v = top + y * (bottom - top) - z * self.h * _FRONT_ZOOM * scale
        return round(u), round(v)

    def _poly(self, pts: list[tuple[float, float, float]]) -> np.ndarray:
        return np.array([self._project(*p) for p in pts], dtype=np.int32)

    def _front_background(self) -> np.ndarray:
        cv2, sc = self._cv2, self.scene
        img = np.empty((self.h, self.w, 3), dtype=np.uint8)
        img[:] = sc.wall_rgb
        img[int(0.40 * self.h):] = sc.floor_rgb
        table = self._poly([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0)])
        cv2.fillPoly(img, [table], sc.table_rgb)
        near_l, near_r = self._project(0, 1, 0), self._project(1, 1, 0)
        cv2.rectangle(img, near_l, (near_r[0], near_r[1] + max(2, self.h // 30)),
                      tuple(int(c * 0.7) for c in sc.table_rgb), -1)
        tx, ty = sc.target
        zone = self._poly([(tx - 0.06, ty - 0.06, 0), (tx + 0.06, ty - 0.06, 0),
                           (tx + 0.06, ty + 0.06, 0), (tx - 0.06, ty + 0.06, 0)])
        cv2.polylines(img, [zone], True, sc.zone_rgb, max(1, self.w // 110))
        for kind, x, y, r, rgb in sc.clutter:
            self._draw_item(img, kind, (x, y, 0.0), r, rgb)
        # Light falls off across the image from the side the light comes from.
        ramp = np.linspace(-1.0, 1.0, self.w) * sc.light_dir * 0.18 + 1.0
        gain = ramp[None, :, None] * np.asarray(sc.light)[None, None, :]
        return np.clip(img * gain, 0, 255).astype(np.uint8)

    def _draw_item(self, img: np.ndarray, kind: str, base: tuple[float, float, float],
                   r: float, rgb: tuple[int, int, int]) -> None:
        x, y, z = base
        if kind == 'disc':
            c = self._project(x, y, z)
            rx = max(1, round(r * self.w * _FRONT_ZOOM * (0.72 + 0.28 * y)))
            self._cv2.ellipse(img, c, (rx, max(1, rx // 2)), 0, 0, 360, rgb, -1)
        else:
            self._draw_block(img, (x, y, z), 2 * r, rgb, lit=False)

    def _draw_block(self, img: np.ndarray, base: tuple[float, float, float], edge: float,
                    rgb: tuple[int, int, int], lit: bool = True) -> None:
        cv2, sc = self._cv2, self.scene
        x, y, z = base
        h = edge / 2
        colour = (lambda c, k: sc.lit(c, k)) if lit else (lambda c, k: tuple(int(v * k)
                                                                              for v in c))
        front = self._poly([(x - h, y + h, z), (x + h, y + h, z), (x + h, y + h, z + edge),
                            (x - h, y + h, z + edge)])
        top = self._poly([(x - h, y - h, z + edge), (x + h, y - h, z + edge),
                          (x + h, y + h, z + edge), (x - h, y + h, z + edge)])
        cv2.fillPoly(img, [front], colour(rgb, 0.75))
        cv2.fillPoly(img, [top], colour(rgb, 1.0))

    def front(self, st: _State) -> np.ndarray:
        cv2, sc = self._cv2, self.scene
        img = self.front_bg.copy()
        shadow = sc.lit(sc.table_rgb, 0.6)
        gx, gy, gz = st.grip
        # Shadows on the table say how high the gripper and the block are.
        for sx, sy, sz, r in ((gx, gy, gz, 0.05), (*st.obj, _OBJ * 0.7)):
            if sz > 0.005:
                c = self._project(sx - 0.05 * sc.light_dir * sz * 3, sy, 0)
                rx = max(1, round(r * self.w * _FRONT_ZOOM / (1 + 2 * sz)))
                cv2.ellipse(img, c, (rx, max(1, rx // 3)), 0, 0, 360, shadow, -1)
        if not st.held:
            self._draw_block(img, st.obj, _OBJ, sc.obj_rgb)
        arm = sc.lit((90, 95, 105))
        dark = sc.lit((45, 48, 55))
        thick = max(2, self.w // 40)
        cv2.line(img, self._project(gx, gy, gz + 0.9), self._project(gx, gy, gz + 0.1),
                 arm, thick)
        half = _GAP_OPEN / 2 + 0.025
        cv2.fillPoly(img, [self._poly([(gx - half, gy, gz + 0.1), (gx + half, gy, gz + 0.1),
                                       (gx + half, gy, gz + 0.065),
                                       (gx - half, gy, gz + 0.065)])], dark)
        if st.held:
            self._draw_block(img, st.obj, _OBJ, sc.obj_rgb)
        for side in (-1, 1):
            inner = gx + side * st.gap / 2
            outer = inner + side * 0.018
            cv2.fillPoly(img, [self._poly([(inner, gy + 0.02, gz + 0.065),
                                           (outer, gy + 0.02, gz + 0.065),
                                           (outer, gy + 0.02, gz - 0.005),
                                           (inner, gy + 0.02, gz - 0.005)])], dark)
        return img

    # Wrist cameras: look down from above the fingers; ``side`` shifts the camera sideways.
    def wrist(self, st: _State, side: int) -> np.ndarray:
        cv2, sc, w, h = self._cv2, self.scene, self.w, self.h
        gx, gy, gz = st.grip
        cam = (gx + side * 0.05, gy - 0.03, gz + _WRIST_UP)
        f = 0.95 * w
        # Principal point chosen so a held block sits centred between the fingers; the sideways
        # offset then shows as parallax of the table, different in the two cameras.
        held_d = _WRIST_UP - _OBJ / 2
        u0, v0 = w / 2 + side * 0.05 * f / held_d, 0.55 * h

        def px(x: float, y: float, z: float = 0.0) -> tuple[int, int]:
            d = max(cam[2] - z, 1e-3)
            return (int(np.clip(u0 + (x - cam[0]) * f / d, -1e5, 1e5)),
                    int(np.clip(v0 + (y - cam[1]) * f / d, -1e5, 1e5)))

        img = np.empty((h, w, 3), dtype=np.uint8)
        img[:] = self.floor
        corners = np.array([px(0, 0), px(1, 0), px(1, 1), px(0, 1)], dtype=np.int32)
        cv2.fillPoly(img, [corners], self.table)
        line = max(1, w // 160)
        for k in range(26):                  # wood grain: shows the gripper moving sideways
            x = k / 25
            cv2.line(img, px(x, 0), px(x, 1), self.stripe, line)
        tx, ty = sc.target
        zone = np.array([px(tx - 0.06, ty - 0.06), px(tx + 0.06, ty - 0.06),
                         px(tx + 0.06, ty + 0.06), px(tx - 0.06, ty + 0.06)], dtype=np.int32)
        cv2.polylines(img, [zone], True, sc.lit(sc.zone_rgb), max(2, w // 60))
        for _, x, y, r, rgb in sc.clutter:
            a, b = px(x - r, y - r), px(x + r, y + r)
            cv2.rectangle(img, a, b, sc.lit(rgb), -1)
        ox, oy, oz = st.obj
        e = _OBJ / 2
        cv2.rectangle(img, px(ox - e, oy - e, oz), px(ox + e, oy + e, oz),
                      sc.lit(sc.obj_rgb, 0.75), -1)
        cv2.rectangle(img, px(ox - e, oy - e, oz + _OBJ), px(ox + e, oy + e, oz + _OBJ),
                      sc.lit(sc.obj_rgb), -1)
        # The fingers are fixed to the camera: only their gap changes (open / closed).
        finger = sc.lit((40, 42, 48))
        tip = sc.lit((70, 72, 80))
        gap_px = st.gap * f / held_d
        fw = 0.09 * w
        for s in (-1, 1):
            inner = w / 2 + s * gap_px / 2
            outer = inner + s * fw
            top_v = 0.52 * h
            pts = np.array([(inner, top_v), (outer, top_v), (outer + s * 0.05 * w, h),
                            (inner + s * 0.02 * w, h)], dtype=np.int32)
            cv2.fillPoly(img, [pts], finger)
            cv2.line(img, (int(inner), int(top_v)), (int(outer), int(top_v)), tip,
                     max(2, h // 40))
        return img

    def add_noise(self, img: np.ndarray, offset: int) -> np.ndarray:
        if self.noise is None:
            return img
        n = img.size
        start = offset % (self.noise[0].size - n + 1)
        pos, neg = (a[start:start + n].reshape(img.shape) for a in self.noise)
        return self._cv2.subtract(self._cv2.add(img, pos), neg)


def render_episode(spec: EpisodeSpec) -> SyntheticEpisode:
    """Render ``spec``: frames of the three cameras, stamps, ground-truth progress, keyframes,
    the task text and a goal image. Deterministic for a spec.

    Raises:
        ConfigError: OpenCV (``opencv-python-headless``) is not installed.
    """
    try:
        import cv2  # noqa: F401  (the renderer draws with it)
    except ImportError as e:
        raise ConfigError('rendering synthetic episodes needs OpenCV: '
                          'pip install opencv-python-headless') from e
    outcome = Outcome(spec.outcome)
    rng = np.random.default_rng(spec.seed)
    scene = _make_scene(rng, miss=outcome is Outcome.FAIL)
    states = _trajectory(outcome, spec.num_frames, rng)
    progress = np.minimum(states, _FAIL_CAP) if scene.miss else states
    renderer = _Renderer(scene, spec.size, spec.noise_std, rng)
    noise_idx = rng.integers(0, 1 << 30, size=(spec.num_frames, 3))
    w, h = spec.size
    frames = {cam: np.empty((spec.num_frames, h, w, 3), dtype=np.uint8) for cam in CAMERAS}
    for i, s in enumerate(states):
        st = scene.state(float(s))
        views = (renderer.front(st), renderer.wrist(st, -1), renderer.wrist(st, 1))
        for c, (cam, img) in enumerate(zip(CAMERAS, views, strict=True)):
            frames[cam][i] = renderer.add_noise(img, int(noise_idx[i, c]))
    goal = renderer.front(replace(scene, miss=False).state(1.0))
    stamps = tuple(spec.start_ns + round(i * 1e9 / spec.fps) for i in range(spec.num_frames))
    return SyntheticEpisode(
        spec=spec, task=scene.task, frames=frames, stamps_ns=stamps,
        progress=tuple(round(float(p), 6) for p in progress),
        keyframes=_keyframes(states, outcome, scene), goal=goal)



class FileForm(str, enum.Enum):
    """How :func:`write_episode_files` stores the frames (upstream's raw-data forms)."""

    VIDEOS = 'videos'   # cam_high.mp4, ... (mp4v: lossy)
    FRAMES = 'frames'   # cam_high/frame_000000.png, ... (lossless)


def write_episode_files(episode: SyntheticEpisode, folder: str | Path,
                        form: FileForm | str = FileForm.VIDEOS) -> Path:
    """Write an episode as upstream's raw data: one video or frame folder per camera, plus
    the labels (:meth:`SyntheticEpisode.write_labels`), for ``robo-dopamine episode``.

    Videos are mp4v at the episode's fps, as upstream's examples; mp4 is lossy, so pixel-exact
    comparisons use the frame folders (PNG) instead.

    Raises:
        ConfigError: ``folder`` exists already, or a video cannot be written.
    """
    import cv2

    form = FileForm(form)
    out = Path(folder)
    if out.exists():
        raise ConfigError(f'episode folder exists already, not overwriting: {str(out)!r}')
    out.mkdir(parents=True)
    h, w = episode.frames['front'].shape[1:3]
    for cam, name in CAMERA_FILES.items():
        frames = episode.frames[cam]
        if form is FileForm.FRAMES:
            (out / name).mkdir()
            for i, rgb in enumerate(frames):
                cv2.imwrite(str(out / name / f'frame_{i:06d}.png'),
                            cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            continue
        writer = cv2.VideoWriter(str(out / f'{name}.mp4'), cv2.VideoWriter_fourcc(*'mp4v'),
                                 episode.spec.fps, (w, h))
        if not writer.isOpened():
            raise ConfigError(f'OpenCV cannot write {str(out / name)!r}.mp4 with mp4v')
        try:
            for rgb in frames:
                writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
    episode.write_labels(out)
    return out


class SceneRenderer:
    """One seeded scene rendered at any task state, for interactive use (the gymnasium env).

    Episodes render a fixed trajectory; an agent chooses the state instead. The scene (layout,
    colours, light) and the goal are those of :func:`render_episode` with the same seed.
    """

    def __init__(self, seed: int, size: tuple[int, int] = (320, 240),
                 noise_std: float = 2.0) -> None:
        EpisodeSpec(seed=seed, size=size, noise_std=noise_std)        # validates the arguments
        self._rng = np.random.default_rng(seed)
        self.scene = _make_scene(self._rng, miss=False)
        self._renderer = _Renderer(self.scene, size, noise_std, self._rng)
        self.task = self.scene.task
        self.goal = self._renderer.front(self.scene.state(1.0))

    def render(self, s: float) -> dict[str, np.ndarray]:
        """The three cameras (:data:`CAMERAS`) at task state ``s`` in [0, 1], fresh noise."""
        st = self.scene.state(min(max(float(s), 0.0), 1.0))
        r = self._renderer
        views = (r.front(st), r.wrist(st, -1), r.wrist(st, 1))
        offsets = self._rng.integers(0, 1 << 30, size=3)
        return {cam: r.add_noise(img, int(o))
                for cam, img, o in zip(CAMERAS, views, offsets, strict=True)}
