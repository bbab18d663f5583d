#!/usr/bin/env python3
"""PyTorch beside skipgrad's precision bench: the same esann step, the same weights and batch, in torch.

    node dist/bench/precision.js --size 256 --batch 8 --dump DIR      (skipgrad: float64 and float32 sides)
    python3 bench/precision_torch.py DIR [--device cpu|cuda]

Reads DIR (the step's settings, the weights, the batch and skipgrad's gradients, raw float64), runs the step
(forward with batch norm in training mode, MSE, backward) in PyTorch in float64 and float32 (TF32 off on CUDA),
and prints each side's error against skipgrad's float64 step, measured as bench/precision.ts measures it: the largest |value - reference| over
the tensor's largest |reference|, for a gradient over 1e-3 of the model's largest gradient where that is larger.
torch float64 against skipgrad float64 checks the reference itself (it should be near 1e-12); torch float32 is
the bar for the float32 sides. The network is bench/gpu/torch_ref.py's EsannAutoencoder (the same parameter
names as skipgrad's).
"""
import argparse
import json
import os
import re
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'gpu'))
from torch_ref import EsannAutoencoder  # noqa: E402


def load(folder, side):
    """{name: array} of one side of the dump (names as in the manifest: 'state l1.weight', 'grad l1.weight', 'x', ...)."""
    with open(os.path.join(folder, f'{side}.json')) as f:
        manifest = json.load(f)
    return {name: np.fromfile(os.path.join(folder, f"{side}.{name.replace(' ', '.')}.f64"), dtype=np.float64).reshape(shape)
            for name, shape in manifest.items()}


def torch_step(ref, model, size, dtype, device):
    """The step in torch from the dumped weights and batch: {'loss', 'grad <name>', '<buffer>'} as float64 arrays."""
    net = EsannAutoencoder(skips=model == 'AESc', size=size, base=ref['state l1.weight'].shape[0]).to(device=device, dtype=dtype).train()
    state = {k[len('state '):]: torch.tensor(v, dtype=dtype, device=device) for k, v in ref.items() if k.startswith('state ')}
    result = net.load_state_dict(state, strict=False)
    if result.unexpected_keys or any('num_batches_tracked' not in k for k in result.missing_keys):
        raise SystemExit(f'precision_torch: the dumped weights do not fit the network: {result}')
    x = torch.tensor(ref['x'], dtype=dtype, device=device)
    target = torch.tensor(ref['target'], dtype=dtype, device=device)
    y, _ = net(x)
    loss = torch.mean((y - target) ** 2)
    loss.backward()
    out = {'loss': np.array([loss.item()])}
    out.update({f'grad {n}': p.grad.detach().double().cpu().numpy().ravel() for n, p in net.named_parameters()})
    out.update({n: b.detach().double().cpu().numpy().ravel() for n, b in net.named_buffers() if 'num_batches' not in n})
    return out


def errors(ref, got):
    """bench/precision.ts's precisionErrors."""
    names = [k for k in ref if k == 'loss' or k.startswith('grad ') or (not k.startswith('state ') and '.running_' in k)]
    grad_scale = max(np.abs(ref[k]).max() for k in names if k.startswith('grad '))
    out = {}
    for k in names:
        a, b = ref[k].ravel(), got[k].ravel()
        scale = np.abs(a).max()
        den = max(scale, 1e-3 * grad_scale) if k.startswith('grad ') else scale
        diff = np.abs(a - b).max()
        out[k] = float('inf') if np.isnan(diff) else diff / (den or 1)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('dump', help="the folder node dist/bench/precision.js --dump wrote")
    ap.add_argument('--device', default='cpu', help='cpu (default) or cuda')
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if not os.path.isfile(os.path.join(a.dump, 'precision-settings.json')):
        raise SystemExit(f'precision_torch: {a.dump} has no precision-settings.json: not a dump of node dist/bench/precision.js '
                         f'--dump (or one made before it wrote its settings: dump again)')
    with open(os.path.join(a.dump, 'precision-settings.json')) as f:
        settings = json.load(f)  # model, size, batch, channels
    model, size = settings['model'], settings['size']
    ref = load(a.dump, 'cpu-float64')
    sides = {'torch float64': torch_step(ref, model, size, torch.float64, a.device),
             'torch float32': torch_step(ref, model, size, torch.float32, a.device)}
    # The float32 sides precision.ts writes (its DUMP_FILE names); other files in the folder are not ours.
    sides_written = [f[:-len('.json')] for f in os.listdir(a.dump) if re.fullmatch(r'(cpu-float32|webgpu-(adapter|gpu|software))\.json', f)]
    for side in sorted(sides_written):
        sides[f"skipgrad {side.replace('-', ' ')}"] = load(a.dump, side)
    table = {name: errors(ref, got) for name, got in sides.items()}
    names = list(next(iter(table.values())).keys())
    print(f'esann {model} {size}x{size}, batch {ref["x"].shape[0]}, base width {ref["state l1.weight"].shape[0]}; '
          f'error against skipgrad float64 on the CPU (torch {torch.__version__} on {a.device})')
    print('| tensor | ' + ' | '.join(table) + ' |')
    print('|---|' + '---|' * len(table))
    for n in names:
        print(f'| {n} | ' + ' | '.join(f'{t[n]:.1e}' for t in table.values()) + ' |')
    print('| **worst** | ' + ' | '.join(f'**{max(t.values()):.2e}**' for t in table.values()) + ' |')


if __name__ == '__main__':
    main()
