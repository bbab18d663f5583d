#!/usr/bin/env python3
"""PyTorch fp32 reference numbers for skipgrad's GPU benches (run by bench/gpu/run.sh on the GPU host).

TF32 is OFF (torch.backends.cuda.matmul.allow_tf32 = False, torch.backends.cudnn.allow_tf32 = False), so
these are true fp32 numbers, comparable with skipgrad's and TensorFlow.js's WebGPU kernels (fp32 FMA).

(a) conv2d at the AESc layer shapes (5x5, stride 2, 'valid'), and the 'same' shape of bench/ops-shapes.ts
    ([4,32,128,128] -> 64, stride 2, 'same' = F.pad (1,2,1,2) then 'valid'):
      kernels: forward, input gradient (dgrad) and weight gradient (wgrad) each alone
               (torch.nn.grad.conv2d_input / conv2d_weight);
      passes:  forward; gradInput = forward + input gradient; gradFull = forward + input and weight
               gradients (through autograd, dy = ones), the same passes as bench/ops.ts measures;
      each: warm-up, then the median of N timed runs (CUDA events on a GPU, perf_counter on the CPU),
      GFLOP/s and TFLOP/s from 2*N*O*OH*OW*C*K*K per conv, and the forward's relative error against
      float64 (shows TF32 is really off: fp32 lands near 1e-7, tf32 near 1e-4).
(b) one training step of the esann AESc and AE (docs/reference-facts.md section 1):
      l1 conv 5x5 'same' 1->16 (no BN, no activation); l2..l5 [conv 5x5 stride 2 'valid' -> BN ->
      LeakyReLU(0.01)] 16->32->64->128->256; l6..l9 [transposed conv 5x5 stride 2, padding 0,
      output_padding 0,0,1,1 -> BN -> LeakyReLU(0.01)], then (AESc only) l7 += l3, l8 += l2, l9 += l1;
      out conv 5x5 'same' 16->1 -> sigmoid. Batch 8 of 1x256x256, MSE, AdamW(lr 1e-3, weight decay 1e-2).
      Median step time, images/s, and peak memory (torch.cuda.max_memory_allocated).

  python3 bench/gpu/torch_ref.py [--out DIR] [--device auto|cuda|cpu] [--quick] [--smoke] [--reps N]
    --smoke: tiny sizes (batch 2, 64x64 model, small convs), 2 repetitions: runs on a CPU in seconds.
    --quick: the real sizes, fewer repetitions.
Writes DIR/torch-ref.json (default DIR: $OUT, else ./gpu-results) and prints a table.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------------------------

# (name, N, C, H, W, O, K, stride, pad) with pad 'valid' or (left, right, top, bottom) for F.pad.
CONV_SHAPES = [
    ('AESc l1->l2 [8,16,256,256] -> 32, 5x5 s2 valid', 8, 16, 256, 256, 32, 5, 2, 'valid'),
    ('AESc l2->l3 [8,32,126,126] -> 64, 5x5 s2 valid', 8, 32, 126, 126, 64, 5, 2, 'valid'),
    ('AESc l3->l4 [8,64,61,61] -> 128, 5x5 s2 valid', 8, 64, 61, 61, 128, 5, 2, 'valid'),
    ('AESc l4->l5 [8,128,29,29] -> 256, 5x5 s2 valid', 8, 128, 29, 29, 256, 5, 2, 'valid'),
    ('[4,32,128,128] -> 64, 5x5 s2 same (pad 1,2)', 4, 32, 128, 128, 64, 5, 2, (1, 2, 1, 2)),
]

SMOKE_CONV_SHAPES = [
    ('smoke [1,16,64,64] -> 32, 5x5 s2 valid', 1, 16, 64, 64, 32, 5, 2, 'valid'),
    ('smoke [1,32,30,30] -> 64, 5x5 s2 valid', 1, 32, 30, 30, 64, 5, 2, 'valid'),
    ('smoke [1,32,32,32] -> 64, 5x5 s2 same (pad 1,2)', 1, 32, 32, 32, 64, 5, 2, (1, 2, 1, 2)),
]


def conv_out(n, k, stride):
    return (n - k) // stride + 1


def padded_hw(h, w, pad):
    if pad == 'valid':
        return h, w
    left, right, top, bottom = pad
    return h + top + bottom, w + left + right


def conv_flops(n, c, h, w, o, k, stride, pad):
    ph, pw = padded_hw(h, w, pad)
    return 2 * n * o * conv_out(ph, k, stride) * conv_out(pw, k, stride) * c * k * k


# ---------------------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------------------


def time_fn(fn, device, warmup, reps):
    """Median milliseconds of fn() over reps runs after warmup runs (CUDA events on a GPU)."""
    for _ in range(warmup):
        fn()
    if device.type == 'cuda':
        torch.cuda.synchronize()
        times = []
        for _ in range(reps):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    else:
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times), times


def rel_err(a, ref):
    a = a.double()
    ref = ref.double()
    return float((a - ref).norm() / ref.norm().clamp_min(1e-300))


# ---------------------------------------------------------------------------------------------------------
# (a) conv2d
# ---------------------------------------------------------------------------------------------------------


def bench_conv(shape, device, warmup, reps, gen):
    name, n, c, h, w, o, k, stride, pad = shape
    x = torch.empty(n, c, h, w, device=device).uniform_(-1, 1, generator=gen)
    wt = torch.empty(o, c, k, k, device=device).uniform_(-0.1, 0.1, generator=gen)

    def prep(t):
        return t if pad == 'valid' else F.pad(t, pad)

    xp = prep(x)
    y = F.conv2d(xp, wt, stride=stride)
    dy = torch.ones_like(y)
    f = conv_flops(n, c, h, w, o, k, stride, pad)
    out = {'name': name, 'input': [n, c, h, w], 'outChannels': o, 'kernel': k, 'stride': stride,
           'padding': pad if pad == 'valid' else {'left': pad[0], 'right': pad[1], 'top': pad[2], 'bottom': pad[3]},
           'output': list(y.shape), 'flopsPerConv': f}

    # Accuracy of the fp32 forward against float64 (same inputs): TF32 would show as ~1e-4.
    with torch.no_grad():
        y64 = F.conv2d(prep(x.double()), wt.double(), stride=stride)
        out['forwardRelErrVsFloat64'] = rel_err(y, y64)
        out['forwardSum'] = float(y.double().sum())
        del y64

    kernels = {}
    with torch.no_grad():
        ms, _ = time_fn(lambda: F.conv2d(prep(x), wt, stride=stride), device, warmup, reps)
        kernels['forward'] = ms
        ms, _ = time_fn(lambda: torch.nn.grad.conv2d_input(xp.shape, wt, dy, stride=stride), device, warmup, reps)
        kernels['dgrad'] = ms
        ms, _ = time_fn(lambda: torch.nn.grad.conv2d_weight(xp, wt.shape, dy, stride=stride), device, warmup, reps)
        kernels['wgrad'] = ms
    out['kernels'] = {p: {'ms': ms, 'gflops': f / (ms / 1000) / 1e9, 'tflops': f / (ms / 1000) / 1e12}
                      for p, ms in kernels.items()}

    # The passes of bench/ops.ts, through autograd (the F.pad, when there is one, is part of each pass).
    xg = x.clone().requires_grad_(True)
    wg = wt.clone().requires_grad_(True)

    def grad_pass(want_weight):
        wg.requires_grad_(want_weight)
        yy = F.conv2d(prep(xg), wg, stride=stride)
        yy.backward(dy)
        xg.grad = None
        wg.grad = None

    passes = {}
    with torch.no_grad():
        passes['forward'] = (time_fn(lambda: F.conv2d(prep(x), wt, stride=stride), device, warmup, reps)[0], f)
    passes['gradInput'] = (time_fn(lambda: grad_pass(False), device, warmup, reps)[0], 2 * f)
    passes['gradFull'] = (time_fn(lambda: grad_pass(True), device, warmup, reps)[0], 3 * f)
    out['passes'] = {p: {'ms': ms, 'flops': fl, 'gflops': fl / (ms / 1000) / 1e9, 'tflops': fl / (ms / 1000) / 1e12}
                     for p, (ms, fl) in passes.items()}
    del x, wt, xp, y, dy, xg, wg
    return out


# ---------------------------------------------------------------------------------------------------------
# (b) the esann AESc / AE and one training step
# ---------------------------------------------------------------------------------------------------------


class Block(nn.Module):
    """conv (or transposed conv) -> BatchNorm -> LeakyReLU(0.01)."""

    def __init__(self, conv, channels, slope):
        super().__init__()
        self.conv = conv
        self.bn = nn.BatchNorm2d(channels)  # eps 1e-5, momentum 0.1 (as skipgrad)
        self.act = nn.LeakyReLU(slope)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class EsannAutoencoder(nn.Module):
    """The esann preset: depth 5, kernel 5, 16 base channels (docs/reference-facts.md section 1).

    Returns the output and the taps l1..l9 (decoder taps after the addition)."""

    def __init__(self, skips, size=256, depth=5, k=5, base=16, in_channels=1, slope=0.01):
        super().__init__()
        self.skips = skips
        sizes = [size]
        chans = [base]
        for i in range(1, depth):
            sizes.append(conv_out(sizes[-1], k, 2))
            chans.append(base * 2 ** i)
        if sizes[-1] < 1:
            raise ValueError(f'size {size} too small for depth {depth}: {sizes}')
        self.sizes = sizes
        self.l1 = nn.Conv2d(in_channels, base, k, stride=1, padding=k // 2)  # 'same' (odd k, stride 1)
        self.encoder = nn.ModuleList(
            Block(nn.Conv2d(chans[i - 1], chans[i], k, stride=2, padding=0), chans[i], slope) for i in range(1, depth))
        self.output_paddings = []
        dec = []
        for i in range(depth - 1, 0, -1):
            frm, to = sizes[i], sizes[i - 1]
            op = to - ((frm - 1) * 2 + k)
            if op not in (0, 1):
                raise ValueError(f'cannot map {frm} back to {to} with kernel {k}, stride 2')
            self.output_paddings.append(op)
            dec.append(Block(nn.ConvTranspose2d(chans[i], chans[i - 1], k, stride=2, padding=0, output_padding=op),
                             chans[i - 1], slope))
        self.decoder = nn.ModuleList(dec)
        self.out = nn.Conv2d(base, in_channels, k, stride=1, padding=k // 2)

    def forward(self, x):
        h = self.l1(x)
        enc = [h]
        for b in self.encoder:
            h = b(h)
            enc.append(h)
        taps = list(enc)
        for j, b in enumerate(self.decoder):
            h = b(h)
            if self.skips and j >= 1:  # l7 += l3, l8 += l2, l9 += l1; l4 is never added
                h = h + enc[len(enc) - 2 - j]
            taps.append(h)
        return torch.sigmoid(self.out(h)), taps


def model_conv_flops(model, batch, size, k=5):
    """Forward FLOPs of the model's convolutions (2*MACs), and those of l1 alone."""
    total = 0
    s = model.sizes
    l1 = 2 * batch * model.l1.out_channels * size * size * model.l1.in_channels * k * k
    total += l1
    for i, b in enumerate(model.encoder):
        total += 2 * batch * b.conv.out_channels * s[i + 1] * s[i + 1] * b.conv.in_channels * k * k
    for j, b in enumerate(model.decoder):
        src = s[len(s) - 1 - j]
        total += 2 * batch * b.conv.in_channels * src * src * b.conv.out_channels * k * k
    total += 2 * batch * model.out.out_channels * size * size * model.out.in_channels * k * k
    return total, l1


def bench_train(skips, device, batch, size, warmup, reps, seed):
    torch.manual_seed(seed)
    model = EsannAutoencoder(skips, size=size).to(device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    x = torch.rand(batch, 1, size, size, device=device, generator=gen)  # the (corrupted) input
    target = torch.rand(batch, 1, size, size, device=device, generator=gen)  # the clean image
    losses = []

    def step():
        opt.zero_grad(set_to_none=True)
        out, _ = model(x)
        loss = F.mse_loss(out, target)
        loss.backward()
        opt.step()
        losses.append(loss)

    with torch.no_grad():
        _, taps = model(x)
        tap_shapes = {f'l{i + 1}': list(t.shape) for i, t in enumerate(taps)}
        del taps
    for _ in range(warmup):
        step()
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    ms, times = time_fn(step, device, 0, reps)
    peak = torch.cuda.max_memory_allocated(device) if device.type == 'cuda' else None
    fwd, l1 = model_conv_flops(model, batch, size)
    step_flops = 3 * fwd - l1  # forward + input and weight gradients; l1's input needs no gradient
    result = {
        'model': 'AESc' if skips else 'AE', 'preset': 'esann', 'batch': batch, 'size': size,
        'taps': tap_shapes, 'outputPaddings': model.output_paddings,
        'parameters': sum(p.numel() for p in model.parameters()),
        'optimizer': 'AdamW(lr=1e-3, weight_decay=1e-2, betas=(0.9, 0.999), eps=1e-8)', 'loss': 'mse',
        'stepMs': ms, 'stepMsAll': times, 'imagesPerSecond': batch / (ms / 1000),
        'convFlopsPerStep': step_flops, 'convTflopsApprox': step_flops / (ms / 1000) / 1e12,
        'peakMemoryBytes': peak, 'peakMemoryMiB': None if peak is None else peak / 2 ** 20,
        'lossFirst': float(losses[0]), 'lossLast': float(losses[-1]),
    }
    del model, opt, x, target, losses
    return result


# ---------------------------------------------------------------------------------------------------------


def fp32_precision_status():
    out = {}
    for name, get in (('cuda.matmul', lambda: torch.backends.cuda.matmul.fp32_precision),
                      ('cudnn.conv', lambda: torch.backends.cudnn.conv.fp32_precision)):
        try:
            out[name] = get()
        except Exception:  # older PyTorch: no such attribute; newer: may refuse while the legacy flags are set
            pass
    return out or None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=os.environ.get('OUT') or 'gpu-results')
    ap.add_argument('--device', default='auto', choices=['auto', 'cuda', 'cpu'])
    ap.add_argument('--quick', action='store_true', help='the real sizes, fewer repetitions')
    ap.add_argument('--smoke', action='store_true', help='tiny sizes, 2 repetitions (for a CPU)')
    ap.add_argument('--reps', type=int, default=None)
    ap.add_argument('--warmup', type=int, default=None)
    ap.add_argument('--parts', default='conv,train', help='comma list of conv,train')
    ap.add_argument('--no-cudnn-benchmark', action='store_true', help='leave torch.backends.cudnn.benchmark False')
    args = ap.parse_args()

    # fp32, TF32 off: set before any CUDA work.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark

    if args.device == 'auto':
        device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    else:
        device = torch.device(args.device)
        if device.type == 'cuda' and not torch.cuda.is_available():
            sys.exit('torch_ref: --device cuda but torch.cuda.is_available() is False')
    if device.type == 'cpu' and not args.smoke:
        print('torch_ref: no CUDA device; the real sizes would take very long on a CPU: using --smoke sizes',
              file=sys.stderr)
        args.smoke = True

    reps = args.reps or (2 if args.smoke else 5 if args.quick else 20)
    warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 3)
    shapes = SMOKE_CONV_SHAPES if args.smoke else CONV_SHAPES
    batch, size = (2, 64) if args.smoke else (8, 256)
    parts = set(args.parts.split(','))

    meta = {
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'host': platform.node(), 'python': platform.python_version(), 'torch': torch.__version__,
        'cuda': torch.version.cuda, 'cudnn': torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        'device': str(device),
        'deviceName': torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or platform.machine(),
        'dtype': 'float32',
        'allowTf32': {'matmul': torch.backends.cuda.matmul.allow_tf32, 'cudnn': torch.backends.cudnn.allow_tf32},
        # PyTorch >= 2.9 also has the per-backend fp32_precision API: only read here (setting both APIs
        # is refused as a mix); the forward's error against float64 below checks the effect either way.
        'fp32Precision': fp32_precision_status(),
        'cudnnBenchmark': torch.backends.cudnn.benchmark,
        'mode': 'smoke' if args.smoke else 'quick' if args.quick else 'full', 'warmup': warmup, 'reps': reps,
        'timing': 'CUDA events, median' if device.type == 'cuda' else 'perf_counter, median',
    }
    if device.type == 'cuda':
        p = torch.cuda.get_device_properties(device)
        meta['deviceProperties'] = {'multiProcessors': p.multi_processor_count, 'totalMemoryBytes': p.total_memory,
                                    'capability': f'{p.major}.{p.minor}'}
    report = {'kind': 'skipgrad-torch-ref', 'meta': meta, 'conv': [], 'train': []}
    out_dir = args.out
    os.makedirs(out_dir, exist_ok=True)
    out_path = os.path.join(out_dir, 'torch-ref.json')

    def save():
        tmp = out_path + '.tmp'
        with open(tmp, 'w') as fh:
            json.dump(report, fh, indent=2)
            fh.write('\n')
        os.replace(tmp, out_path)

    gen = torch.Generator(device=device)
    gen.manual_seed(42)
    t_start = time.time()
    if 'conv' in parts:
        for s in shapes:
            print(f'[torch] conv {s[0]} ...', file=sys.stderr, flush=True)
            try:
                report['conv'].append(bench_conv(s, device, warmup, reps, gen))
            except Exception as e:  # keep going: one failing shape must not lose the rest
                report['conv'].append({'name': s[0], 'error': f'{type(e).__name__}: {e}'})
            save()
    if 'train' in parts:
        for skips in (True, False):
            print(f'[torch] train step {"AESc" if skips else "AE"} batch {batch} {size}x{size} ...', file=sys.stderr, flush=True)
            try:
                report['train'].append(bench_train(skips, device, batch, size, warmup, reps, seed=0))
            except Exception as e:
                report['train'].append({'model': 'AESc' if skips else 'AE', 'error': f'{type(e).__name__}: {e}'})
            if device.type == 'cuda':
                torch.cuda.empty_cache()
            save()
    report['meta']['seconds'] = round(time.time() - t_start, 2)
    save()

    # Table
    print(f"\nPyTorch {meta['torch']} fp32 (TF32 off) on {meta['deviceName']} [{meta['mode']}, median of {reps}]")
    for r in report['conv']:
        if 'error' in r:
            print(f"  {r['name']}: ERROR {r['error']}")
            continue
        k = r['kernels']
        ps = r['passes']
        print(f"  {r['name']}: fwd {k['forward']['ms']:.3f} ms ({k['forward']['tflops']:.2f} TFLOP/s), "
              f"dgrad {k['dgrad']['ms']:.3f} ms ({k['dgrad']['tflops']:.2f}), wgrad {k['wgrad']['ms']:.3f} ms "
              f"({k['wgrad']['tflops']:.2f}); passes fwd/gradInput/gradFull {ps['forward']['ms']:.3f}/"
              f"{ps['gradInput']['ms']:.3f}/{ps['gradFull']['ms']:.3f} ms; fwd rel err vs fp64 {r['forwardRelErrVsFloat64']:.1e}")
    for r in report['train']:
        if 'error' in r:
            print(f"  train {r['model']}: ERROR {r['error']}")
            continue
        mem = f", peak {r['peakMemoryMiB']:.0f} MiB" if r['peakMemoryMiB'] is not None else ''
        print(f"  train step {r['model']} (batch {r['batch']}, {r['size']}x{r['size']}): {r['stepMs']:.2f} ms, "
              f"{r['imagesPerSecond']:.1f} images/s, ~{r['convTflopsApprox']:.2f} TFLOP/s in convs{mem}; "
              f"loss {r['lossFirst']:.4f} -> {r['lossLast']:.4f}")
    print(f'wrote {out_path}')
    failed = [r for r in report['conv'] + report['train'] if 'error' in r]
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
