"""Rendering: the three cameras (front, two wrists) of one scene at one task state, plus sensor
noise."""

from __future__ import annotations

import numpy as np

from .scene import FRONT_ZOOM, GAP_OPEN, OBJ, WRIST_UP, Scene, State


class Renderer:
    """Draws the three cameras for one scene; the static background is rendered once."""

    def __init__(self, scene: Scene, size: tuple[int, int], noise_std: float,
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
        u = self.w / 2 + (x - 0.5) * self.w * FRONT_ZOOM * scale
        v = top + y * (bottom - top) - z * self.h * FRONT_ZOOM * scale
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
            rx = max(1, round(r * self.w * FRONT_ZOOM * (0.72 + 0.28 * y)))
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

    def front(self, st: State) -> np.ndarray:
        cv2, sc = self._cv2, self.scene
        img = self.front_bg.copy()
        shadow = sc.lit(sc.table_rgb, 0.6)
        gx, gy, gz = st.grip
        # Shadows on the table say how high the gripper and the block are.
        for sx, sy, sz, r in ((gx, gy, gz, 0.05), (*st.obj, OBJ * 0.7)):
            if sz > 0.005:
                c = self._project(sx - 0.05 * sc.light_dir * sz * 3, sy, 0)
                rx = max(1, round(r * self.w * FRONT_ZOOM / (1 + 2 * sz)))
                cv2.ellipse(img, c, (rx, max(1, rx // 3)), 0, 0, 360, shadow, -1)
        if not st.held:
            self._draw_block(img, st.obj, OBJ, sc.obj_rgb)
        arm = sc.lit((90, 95, 105))
        dark = sc.lit((45, 48, 55))
        thick = max(2, self.w // 40)
        cv2.line(img, self._project(gx, gy, gz + 0.9), self._project(gx, gy, gz + 0.1),
                 arm, thick)
        half = GAP_OPEN / 2 + 0.025
        cv2.fillPoly(img, [self._poly([(gx - half, gy, gz + 0.1), (gx + half, gy, gz + 0.1),
                                       (gx + half, gy, gz + 0.065),
                                       (gx - half, gy, gz + 0.065)])], dark)
        if st.held:
            self._draw_block(img, st.obj, OBJ, sc.obj_rgb)
        for side in (-1, 1):
            inner = gx + side * st.gap / 2
            outer = inner + side * 0.018
            cv2.fillPoly(img, [self._poly([(inner, gy + 0.02, gz + 0.065),
                                           (outer, gy + 0.02, gz + 0.065),
                                           (outer, gy + 0.02, gz - 0.005),
                                           (inner, gy + 0.02, gz - 0.005)])], dark)
        return img

    # Wrist cameras: look down from above the fingers; ``side`` shifts the camera sideways.
    def wrist(self, st: State, side: int) -> np.ndarray:
        cv2, sc, w, h = self._cv2, self.scene, self.w, self.h
        gx, gy, gz = st.grip
        cam = (gx + side * 0.05, gy - 0.03, gz + WRIST_UP)
        f = 0.95 * w
        # Principal point chosen so a held block sits centred between the fingers; the sideways
        # offset then shows as parallax of the table, different in the two cameras.
        held_d = WRIST_UP - OBJ / 2
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
        e = OBJ / 2
        cv2.rectangle(img, px(ox - e, oy - e, oz), px(ox + e, oy + e, oz),
                      sc.lit(sc.obj_rgb, 0.75), -1)
        cv2.rectangle(img, px(ox - e, oy - e, oz + OBJ), px(ox + e, oy + e, oz + OBJ),
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
