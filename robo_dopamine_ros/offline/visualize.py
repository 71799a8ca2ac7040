"""``reward_vis.mp4`` in upstream's layout (docs/upstream.md §4.3), written with OpenCV (no
moviepy).

Canvas 1152x548: the AFTER frame's left wrist | front | right wrist views (384x288 each) above a
1152x260 figure with "Instant Hop/Reward (SymLog)" (hop per step) and "Accumulated Progress"
(progress per AFTER front frame id). The first video frame ("Start") shows item 0's BEFORE views.
Upstream writes 4 fps; so do we.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files.outputs import written

PANEL_W, PANEL_H = 384, 288
FIG_W, FIG_H = 1152, 260
FPS = 4.0
GREEN, RED, GREY = '#00A000', '#CC0000', '#808080'


@dataclass(frozen=True)
class VisFrame:
    """One video frame: the three views (front, left, right; RGB) and the values to show."""

    front: np.ndarray
    left: np.ndarray
    right: np.ndarray
    hop: float
    progress: float
    frame_id: int      # AFTER front frame index (x of the progress subplot)
    label: str         # 'Start' or 'Step=i Hop=.. Prog=..'


def _figure(items: Sequence[VisFrame], upto: int) -> np.ndarray:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (ax_h, ax_p) = plt.subplots(1, 2, figsize=(FIG_W / 100, FIG_H / 100), dpi=100)
    steps = list(range(upto + 1))
    hops = [items[i].hop for i in steps]
    ax_h.plot(steps, hops, color=GREY, lw=1)
    ax_h.scatter(steps, hops, s=14, zorder=3,
                 c=[GREEN if h > 0 else RED if h < 0 else GREY for h in hops])
    ax_h.set_yscale('symlog', linthresh=0.05)
    ax_h.set_ylim(-1.5, 1.5)
    ax_h.set_yticks([-1, -0.1, 0, 0.1, 1], ['-100%', '-10%', '0', '10%', '100%'])
    ax_h.set_xlim(0, max(5, len(items) + 1))
    ax_h.set_title('Instant Hop/Reward (SymLog)', fontsize=9)
    frames = [items[i].frame_id for i in steps]
    progress = [items[i].progress for i in steps]
    ax_p.plot(frames, progress, color=GREY, lw=1)
    colors = [GREEN if i == 0 or progress[i] >= progress[i - 1] else RED for i in steps]
    ax_p.scatter(frames, progress, s=14, c=colors, zorder=3)
    ax_p.set_ylim(-0.05, 1.05)
    ax_p.set_xlim(0, max(f.frame_id for f in items) + 1)
    ax_p.set_title('Accumulated Progress', fontsize=9)
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy()
    plt.close(fig)
    return image


def _panel(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(image, (PANEL_W, PANEL_H), interpolation=cv2.INTER_AREA)


def write_reward_video(items: Sequence[VisFrame], path: str | Path) -> Path:
    """Render the frames (item 0 = 'Start') to an mp4 at 4 fps; returns the path."""
    import cv2

    if not items:
        raise ValueError('no frames to visualise')
    out = Path(path)
    with written(out) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*'mp4v'), FPS,
                                 (FIG_W, PANEL_H + FIG_H))
        try:
            for i, item in enumerate(items):
                top = np.hstack([_panel(item.left), _panel(item.front), _panel(item.right)])
                canvas = np.vstack([top, _figure(items, i)])
                cv2.putText(canvas, item.label, (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                            (255, 255, 255), 2)
                writer.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
    return out
