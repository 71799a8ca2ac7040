"""Image preprocessing once per distinct image of a call, rows repeated as the processor would."""

from __future__ import annotations

from typing import Any


class DistinctImages:
    """The processor's image processor, run once per distinct image object of a call.

    A fused step's 24 images are about 10 distinct ones (REF START and the goal are in all three
    queries, the AFTER views too), and preprocessing (rescale, normalise, patchify) runs per
    image on the host, on the robot's CPU whatever the GPU. The output is what the wrapped
    processor gives for the full list, rows repeated in order, so the model's inputs are the
    same.
    Attribute reads and writes go to the wrapped processor (``apply_pixel_limits`` still works).
    """

    def __init__(self, inner: Any) -> None:
        object.__setattr__(self, 'inner', inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.inner, name, value)

    def __call__(self, images: Any, **kwargs: Any) -> Any:
        import torch

        if not isinstance(images, list) or kwargs.get('return_tensors') != 'pt':
            return self.inner(images, **kwargs)
        first: dict[int, int] = {}
        order = [first.setdefault(id(im), len(first)) for im in images]
        if len(first) == len(images):
            return self.inner(images, **kwargs)
        distinct = list({id(im): im for im in images}.values())
        out = self.inner(distinct, **kwargs)
        grid, pixels = out['image_grid_thw'], out['pixel_values']
        rows = grid.prod(-1).tolist()
        starts = [sum(rows[:j]) for j in range(len(rows))]
        out['pixel_values'] = torch.cat([pixels[starts[j]:starts[j] + rows[j]] for j in order])
        out['image_grid_thw'] = grid[order]
        return out
