"""The ``data preprocess|generate|postprocess`` and ``finetune`` subcommands.

Kept out of the main ``cli`` module so the training options live next to the code they
configure; like the rest of the CLI, nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..core.names import DEFAULT_TOPICS


def _cmd_preprocess(args: argparse.Namespace) -> int:
    from ..core.errors import ConfigError
    from .preprocess import PreprocessConfig, preprocess
    from .sources import bag_episode, discover

    if not args.raw and not args.bag:
        raise ConfigError('give the raw episodes: --raw DIR and/or --bag BAG')
    if args.keyframes and len(args.keyframes) != len(args.bag or []):
        raise ConfigError(f'--keyframes must be given once per --bag ({len(args.bag or [])}), '
                          f'got {len(args.keyframes)}')
    episodes = [ep for raw in args.raw or [] for ep in discover(Path(raw))]
    keyframes = args.keyframes or [None] * len(args.bag or [])
    episodes += [bag_episode(Path(bag), Path(kf) if kf else None,
                             Path(args.instructions) if args.instructions else None,
                             args.topics, round(args.slop * 1e9))
                 for bag, kf in zip(args.bag or [], keyframes, strict=True)]
    t0 = time.perf_counter()
    summaries = preprocess(episodes, PreprocessConfig(
        out=Path(args.out), sample_factor=args.sample_factor, jpeg_quality=args.jpeg_quality,
        workers=args.workers, progress=not args.quiet))
    for s in summaries:
        print(f'{s.name}: {s.num_frames} frames, {s.sample_frames} sampled, '
              f'{s.frames_written} JPEGs written')
    print(f'{len(summaries)} episodes -> {args.out} in {time.perf_counter() - t0:.1f} s')
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from .generate import GenerateConfig, generate

    t0 = time.perf_counter()
    config = GenerateConfig(
        max_sample_num=args.max_sample_num, seed=args.seed, score_bins=args.score_bins,
        gap_bins=args.gap_bins, oversample_factor=args.oversample_factor,
        zero_ratio=args.zero_ratio, image_prefix=args.image_prefix, workers=args.workers,
        progress=not args.quiet)
    counts = generate(Path(args.dataset), config, Path(args.output) if args.output else None)
    for name, count in counts.items():
        print(f'{name}: {count} samples' + ('' if count else ' (skipped: too few frames)'))
    print(f'{sum(counts.values())} samples from {len(counts)} episodes in '
          f'{time.perf_counter() - t0:.1f} s')
    return 0


def _cmd_postprocess(args: argparse.Namespace) -> int:
    from .postprocess import PostprocessConfig, postprocess

    stats = postprocess(Path(args.dataset), PostprocessConfig(
        replace_prob=args.replace_prob, seed=args.seed,
        merged_json=Path(args.merged_json) if args.merged_json else None,
        final_json=Path(args.final_json) if args.final_json else None))
    print(f'{stats.total} samples merged and shuffled -> {stats.merged_json}')
    print(f'anchors swapped in {stats.replaced} of {stats.eligible} ({stats.changed} to other '
          f'anchors) -> {stats.final_json}')
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    from .finetune import FinetuneConfig, finetune

    config = FinetuneConfig(
        data=Path(args.data), output_dir=Path(args.out), model=args.model,
        from_config=Path(args.from_config) if args.from_config else None,
        tokenizer=args.tokenizer, image_root=Path(args.image_root) if args.image_root else None,
        method=args.method, precision=args.precision, epochs=args.epochs,
        max_steps=args.max_steps, batch_size=args.batch_size, grad_accum=args.grad_accum,
        lr=args.lr, merger_lr=args.merger_lr, vision_lr=args.vision_lr,
        lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
        gradient_checkpointing=not args.no_gradient_checkpointing,
        prompt_variant=args.prompt_variant, attn_implementation=args.attn,
        save_steps=args.save_steps, seed=args.seed,
        dataloader_workers=args.workers, cpu=args.cpu, progress=not args.quiet)
    out = finetune(config)
    print(f'fine-tuned GRM saved in {out}; score with it: --model {out}')
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``data`` (with its three steps) and ``finetune`` to the main subparsers."""
    data = sub.add_parser('data', help='make GRM training data from demonstrations '
                                       '(upstream steps 0, 1, 2)')
    steps = data.add_subparsers(dest='step', required=True, metavar='STEP')

    pre = steps.add_parser('preprocess', help='step 0: sample frames by keyframes, extract them')
    pre.add_argument('--raw', action='append', metavar='DIR',
                     help='upstream raw directory (episode_*/ + task_instruction.json) or one '
                          'episode directory with cam_high.mp4, cam_left_wrist.mp4, '
                          'cam_right_wrist.mp4 (repeatable)')
    pre.add_argument('--bag', action='append', metavar='BAG',
                     help='rosbag2 episode (repeatable); keyframes index its synchronized frames')
    pre.add_argument('--keyframes', action='append', metavar='JSON',
                     help='keyframes of each --bag, in order (default: '
                          'annotated_keyframes.json next to the bag storage file)')
    pre.add_argument('--instructions', metavar='JSON',
                     help='task_instruction.json for the bags (default: next to each bag)')
    pre.add_argument('--topics', nargs=3, metavar=('FRONT', 'LEFT', 'RIGHT'),
                     default=list(DEFAULT_TOPICS.values()),
                     help='bag image topics (default: %(default)s)')
    pre.add_argument('--slop', type=float, default=0.05, metavar='S',
                     help='max header-stamp spread of a synchronized bag frame, seconds')
    pre.add_argument('--out', required=True, help='converted dataset directory (train_data)')
    pre.add_argument('--sample-factor', type=int, default=20,
                     help='about one sampled frame per N annotated frames (default: 20)')
    pre.add_argument('--jpeg-quality', type=int, default=95)
    pre.set_defaults(func=_cmd_preprocess)

    gen = steps.add_parser('generate', help='step 1: hop-labelled samples per episode')
    gen.add_argument('dataset', help='the converted dataset directory')
    gen.add_argument('--max-sample-num', type=int, default=1000,
                     help='samples per episode, zero-hop ones included (default: 1000)')
    gen.add_argument('--seed', type=int, default=1234)
    gen.add_argument('--score-bins', type=int, default=25)
    gen.add_argument('--gap-bins', type=int, default=4)
    gen.add_argument('--oversample-factor', type=int, default=100)
    gen.add_argument('--zero-ratio', type=float, default=0.05)
    gen.add_argument('--image-prefix', default=None,
                     help="first component of the records' image paths (default: the "
                          "dataset directory's name)")
    gen.add_argument('--output', default=None, help='also write all samples merged to this file')
    gen.set_defaults(func=_cmd_generate)

    post = steps.add_parser('postprocess', help='step 2: merge, shuffle, swap reference anchors')
    post.add_argument('dataset', help='the converted dataset directory')
    post.add_argument('--replace-prob', type=float, default=0.75)
    post.add_argument('--seed', type=int, default=1234)
    post.add_argument('--merged-json', default=None,
                      help='default: <dataset>/train_jsons/finetune_data_wo_replace.json')
    post.add_argument('--final-json', default=None,
                      help='default: <dataset>/train_jsons/finetune_data_final.json')
    post.set_defaults(func=_cmd_postprocess)
    for step in (pre, gen):
        step.add_argument('--workers', type=int, default=None,
                          help='parallel processes (default: one per CPU)')
    for step in (pre, gen, post):
        step.add_argument('-q', '--quiet', action='store_true', help='no progress bar')

    ft = sub.add_parser('finetune', help='fine-tune a GRM on the records of `data`: LoRA '
                                         '(merged on save) or full')
    ft.add_argument('--data', required=True, help='finetune_data_final.json')
    ft.add_argument('--out', required=True, help='output checkpoint directory')
    src = ft.add_mutually_exclusive_group(required=True)
    src.add_argument('--model', help='pretrained GRM directory or cached hub id')
    src.add_argument('--from-config', metavar='CONFIG',
                     help='train from scratch: a config.json (or its directory)')
    ft.add_argument('--tokenizer', help='with --from-config: tokenizer/processor directory')
    ft.add_argument('--image-root', help="directory the records' image paths are relative to "
                                         '(default: found from the data file)')
    ft.add_argument('--method', default='lora', choices=('lora', 'full'))
    ft.add_argument('--precision', default='bf16', choices=('bf16', 'fp32'))
    ft.add_argument('--epochs', type=float, default=2.0)
    ft.add_argument('--max-steps', type=int, default=None)
    ft.add_argument('--batch-size', type=int, default=2)
    ft.add_argument('--grad-accum', type=int, default=16)
    ft.add_argument('--lr', type=float, default=None,
                    help='language-model learning rate (default: 1e-4 lora, 1e-5 full)')
    ft.add_argument('--merger-lr', type=float, default=1e-5)
    ft.add_argument('--vision-lr', type=float, default=5e-7)
    ft.add_argument('--lora-r', type=int, default=16)
    ft.add_argument('--lora-alpha', type=int, default=32)
    ft.add_argument('--lora-dropout', type=float, default=0.05)
    ft.add_argument('--prompt-variant', default='training', choices=('training', 'inference'),
                    help="prompt to train on: upstream's training variant (default) or the "
                         'inference variant the engine sends (task in backticks)')
    ft.add_argument('--no-gradient-checkpointing', action='store_true')
    ft.add_argument('--attn', default=None, help="attention kernel, e.g. 'flash_attention_2'")
    ft.add_argument('--save-steps', type=int, default=0,
                    help='Trainer checkpoint every N steps (default: final model only)')
    ft.add_argument('--seed', type=int, default=42)
    ft.add_argument('--workers', type=int, default=2, help='data loader processes')
    ft.add_argument('--cpu', action='store_true', help='train on the CPU')
    ft.add_argument('-q', '--quiet', action='store_true', help='no progress bar')
    ft.set_defaults(func=_cmd_finetune)
