"""LeRobot v3 datasets read and written directly (pyarrow, PyAV), without the ``lerobot`` package.

``layout`` reads a dataset's metadata and frame tables, ``video`` decodes and encodes its
multi-episode MP4 files, ``writer`` writes a dataset (the synthetic generator, the relabelled
copy) and ``relabel`` scores every episode with the one episode engine.
"""
