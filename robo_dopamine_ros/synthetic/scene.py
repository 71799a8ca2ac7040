"""Task state -> scene: the seeded layout and look of one episode, and where the gripper and the
block are at each task state ``s`` (the ground-truth progress)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Sub-task boundaries on the state axis; the names become keyframe annotations.
_GRASP, _LIFT, _CARRY, _PLACE, _RELEASE, _RETREAT = 0.25, 0.40, 0.50, 0.75, 0.85, 0.93
PHASES: tuple[tuple[str, float], ...] = (
    ('reach the {obj}', 0.0), ('grasp the {obj}', _GRASP), ('lift the {obj}', _LIFT),
    ('carry it to the {zone}', _CARRY), ('place it on the {zone}', _PLACE),
    ('release it', _RELEASE), ('retreat', _RETREAT))
FAIL_CAP = _GRASP      # a missed grasp earns the reach only

OBJ = 0.07             # block edge, table units (the table is 1 x 1)
GAP_OPEN = 0.12        # finger gap when fully open
_Z_CARRY = 0.22        # gripper height while carrying
_Z_HOME = 0.34
_Z_RETREAT = 0.30
_MISS_DX = 0.11        # lateral offset of a missed grasp
FRONT_ZOOM = 1.15      # front camera: image widths per table width at the near edge
WRIST_UP = 0.25        # wrist cameras: height above the fingertips

_COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ('red', (205, 40, 35)), ('green', (40, 165, 60)), ('blue', (35, 80, 210)),
    ('yellow', (230, 200, 30)), ('orange', (240, 130, 20)), ('purple', (135, 55, 180)))


@dataclass(frozen=True)
class State:
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
class Scene:
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

    def state(self, s: float) -> State:
        """The scene at task state ``s`` (the ground-truth progress, before the fail cap)."""
        ox, oy = self.obj_start
        tx, ty = self.target
        grasp_x = ox + (_MISS_DX if self.miss else 0.0)
        z_grasp = OBJ / 2
        held_gap = 0.0 if self.miss else OBJ
        home = (0.5, 0.30, _Z_HOME)
        if s < _GRASP:                                 # reach: over, then down
            u = s / _GRASP
            x, y = _lerp(home[:2], (grasp_x, oy), _ease(u / 0.6))
            z = home[2] + (z_grasp - home[2]) * _ease((u - 0.3) / 0.7)
            return State((x, y, z), GAP_OPEN, (ox, oy, 0.0), False)
        if s < _LIFT:                                  # grasp: close the fingers
            gap = GAP_OPEN + (held_gap - GAP_OPEN) * _ease((s - _GRASP) / (_LIFT - _GRASP))
            return State((grasp_x, oy, z_grasp), gap, (ox, oy, 0.0), False)
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
            gap = OBJ + (GAP_OPEN - OBJ) * _ease((s - _RELEASE) / (_RETREAT - _RELEASE))
            z = z_grasp + (_Z_RETREAT - z_grasp) * _ease((s - _RETREAT) / (1.0 - _RETREAT))
            return State((tx, ty, z), gap, (tx, ty, 0.0), False)
        return State(grip, OBJ, (grip[0], grip[1], grip[2] - z_grasp), True)


def make_scene(rng: np.random.Generator, miss: bool) -> Scene:
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
    return Scene(
        obj_start=(float(rng.uniform(0.18, 0.35)), float(rng.uniform(0.42, 0.62))),
        target=(float(rng.uniform(0.65, 0.82)), float(rng.uniform(0.42, 0.62))),
        obj_name=_COLOURS[obj_i][0], obj_rgb=_COLOURS[obj_i][1],
        zone_name=_COLOURS[zone_i][0], zone_rgb=_COLOURS[zone_i][1],
        table_rgb=table, wall_rgb=wall, floor_rgb=floor,
        light=tuple(float(gain * t) for t in tint), light_dir=float(rng.uniform(-1.0, 1.0)),
        clutter=tuple(clutter), miss=miss)
