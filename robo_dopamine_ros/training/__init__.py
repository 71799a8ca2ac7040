"""Training data and fine-tuning: one demonstration -> GRM samples -> an adapted checkpoint.

Reproduces upstream's data pipeline (``dataset/utils``, docs/upstream.md §8) with the same file
formats:

* ``preprocess`` (step 0): keyframe-based frame sampling -> ``sample_frames.json``; extracts only
  the frames that step 1 can use, as JPEG.
* ``generate`` (step 1): hop-labelled BEFORE/AFTER pairs balanced over score and gap bins, plus
  zero-hop pairs -> ``episode_*/train.json`` records with the training prompt and 8 images.
* ``postprocess`` (step 2): merge, shuffle, anchor swap -> ``finetune_data_final.json``.
* ``finetune``: the transformers Trainer on those records, LoRA (merged on save) or full.

Unlike upstream, every step is deterministic for a seed. Modules import torch, transformers
and OpenCV only where they need them, so the data steps run without a model stack.
"""
