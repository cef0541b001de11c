"""Convert a trained DIDB-ViT checkpoint into a deploy checkpoint.

The deploy checkpoint keeps every binary weight as packed sign bits (1 bit
per weight, ``int32`` words) plus one scale per output channel; the float
binary weights are dropped. ``tools/test.py CONFIG DEPLOY_CKPT`` evaluates it
unchanged: the model switches itself to deploy mode when it loads packed
weights. Format and numerics: the docstring of ``mmdidb.models.deploy``.

Usage::

    python tools/deploy/convert.py CONFIG CHECKPOINT OUT [--fp16]

Prints both file sizes and, unless ``--no-verify``, the largest difference
between the training graph's outputs and those of a fresh model loaded from
the written deploy checkpoint, on a random input.
"""
import argparse
import copy
import os
import sys

import torch
from mmengine.config import DictAction
from mmengine.model import BaseModel
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import load_checkpoint

import mmdidb  # noqa: F401  (applies mmdidb.compat, registers the modules)
from mmdidb.apis import load_config
from mmdidb.models.deploy import (
    META_KEY,
    deploy_checkpoint,
    has_packed_weights,
    switch_to_deploy,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert a DIDB-ViT checkpoint to a deploy checkpoint')
    parser.add_argument('config', help='config file the model was trained with')
    parser.add_argument('checkpoint', help='trained checkpoint')
    parser.add_argument('out', help='where to write the deploy checkpoint')
    parser.add_argument(
        '--fp16', action='store_true',
        help='store the full-precision leftovers (patch embedding, head, '
        'norms, scales) in float16: smaller, but the rounded weights move '
        'the logits (see mmdidb/models/deploy/__init__.py)')
    parser.add_argument(
        '--no-verify', action='store_true',
        help='skip comparing the outputs of the written checkpoint with the '
        'training graph on a random input')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, as key=value pairs')
    return parser.parse_args(argv)


def build_model(cfg):
    """The model of ``cfg``, in training form, on CPU, in eval mode."""
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = copy.deepcopy(cfg.model)
    # as mmengine's Runner does
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model = MODELS.build(model_cfg)
    model.eval()
    return model


def dummy_input(cfg) -> torch.Tensor:
    """A random batch of 2 at the backbone's configured size."""
    backbone = cfg.model.get('backbone', cfg.model)
    size = backbone.get('img_size', 224)
    size = (size, size) if isinstance(size, int) else tuple(size)
    generator = torch.Generator().manual_seed(0)
    return torch.randn(2, backbone.get('in_channels', 3), *size,
                       generator=generator)


@torch.no_grad()
def outputs(model, x) -> torch.Tensor:
    """All outputs (logits, or backbone features) of ``model``, flattened."""
    out = model(x, mode='tensor') if isinstance(model, BaseModel) \
        else model(x)
    out = out if isinstance(out, (tuple, list)) else [out]
    return torch.cat([o.flatten() for o in out])


def mib(path) -> str:
    size = os.path.getsize(path)
    return f'{size:,} bytes ({size / 2**20:.2f} MiB)'


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    model = build_model(cfg)
    checkpoint = load_checkpoint(model, args.checkpoint, map_location='cpu',
                                 strict=True,
                                 revise_keys=[(r'^module\.', '')])
    state = checkpoint.get('state_dict', checkpoint)
    if has_packed_weights(state):
        sys.exit(f'{args.checkpoint} is already a deploy checkpoint')
    x = dummy_input(cfg)
    reference = None if args.no_verify else outputs(model, x)

    switched = switch_to_deploy(model)
    if not switched:
        sys.exit('nothing to convert: the model has no W1A1 binary layer')
    float_dtype = 'fp16' if args.fp16 else 'fp32'
    # keep what inference uses (class names) and the provenance; the config
    # text and the training state are not needed to run the model
    meta = dict(checkpoint.get('meta') or {})
    meta = {k: v for k, v in meta.items() if k in ('dataset_meta', 'seed',
                                                  'experiment_name', 'time',
                                                  'epoch', 'iter',
                                                  'mmengine_version')}
    meta['source_checkpoint'] = os.path.basename(args.checkpoint)
    try:
        deploy = deploy_checkpoint(model, float_dtype, meta)
    except ValueError as err:
        sys.exit(f'nothing to convert: {err}')
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save(deploy, args.out)

    info = deploy['meta'][META_KEY]
    print(f'switched {len(switched)} modules to deploy mode; '
          f'{info["packed_keys"]} packed weights, float leftovers in '
          f'{float_dtype}')
    extra = [k for k in ('optimizer', 'message_hub') if k in checkpoint]
    print(f'training checkpoint: {args.checkpoint}: {mib(args.checkpoint)}'
          + (f' (includes {" and ".join(extra)})' if extra else ''))
    print(f'deploy checkpoint:   {args.out}: {mib(args.out)}')
    fp32_bytes = sum(v.numel() * 4 for v in state.values()
                     if v.is_floating_point())
    print(f'the model\'s weights in fp32 take {fp32_bytes:,} bytes: '
          f'{fp32_bytes / os.path.getsize(args.out):.1f}x the deploy '
          'checkpoint')
    if reference is not None:
        fresh = build_model(cfg)
        load_checkpoint(fresh, args.out, map_location='cpu', strict=True)
        diff = (outputs(fresh, x) - reference).abs().max().item()
        scale = reference.abs().max().item()
        print(f'verify: max |deploy - training| output difference {diff:.3g} '
              f'(outputs up to {scale:.3g}) on a random input of shape '
              f'{tuple(x.shape)}')


if __name__ == '__main__':
    main()
