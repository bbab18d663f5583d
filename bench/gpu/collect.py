#!/usr/bin/env python3
"""Merges one GPU run's results into a single JSON (called by bench/gpu/run.sh; Python stdlib only).

  python3 collect.py --results RES --bundle bundle.json --out gpu-<stamp>.json
  python3 collect.py --markdown gpu-<stamp>.json [--out gpu-<stamp>.md]

The second form, run where the results came back, writes one markdown page from a run's JSON (the GPU, the aims,
each part's table, the kernels beside PyTorch's, failures and warnings), for bench/results/ next to the JSON.

RES (run.sh's scratch results folder) holds run.txt (key=value), nvidia-smi-q.txt, nvidia-smi-*.csv, and
one folder per part (probe, dispatch, host, profile, ops, model, torch, precision, tiles, probe-first) with status.txt (key=value), output.log and
the part's JSON files. The output: {kind, date, gpu: {name, ...}, aims, nvidiaSmi: {summary, before, after, q},
vulkan, adapter, bundle, parts: {name: {status, results: {file: json}, outputTail}}}.
aims: issue 6's bar per model (AESc, AE), from the model and torch parts: skipgrad webgpu's training step at
>= 50% of PyTorch fp32's images/s (same preset, size and batch) and >= 5x tfjs-webgpu's.
"""
import argparse
import datetime
import json
import os
import platform
import re
import sys


def read_kv(path):
    out = {}
    if not os.path.isfile(path):
        return out
    with open(path, errors='replace') as fh:
        for line in fh:
            line = line.rstrip('\n')
            if '=' in line:
                k, v = line.split('=', 1)
                out[k] = int(v) if re.fullmatch(r'-?\d+', v) else v
    return out


def read_text(path, limit=None):
    if not os.path.isfile(path):
        return None
    with open(path, errors='replace') as fh:
        text = fh.read()
    return text if limit is None else text[-limit:]


def read_csv(path):
    """nvidia-smi --format=csv: a header line and one line per GPU -> list of dicts."""
    text = read_text(path)
    if not text:
        return None
    lines = [l for l in text.splitlines() if l.strip()]
    if len(lines) < 2 or ',' not in lines[0]:
        return {'raw': text}
    head = [h.strip() for h in lines[0].split(',')]
    return [dict(zip(head, (v.strip() for v in l.split(',')))) for l in lines[1:]]


# Keys of nvidia-smi -q kept in the summary (the first occurrence of each, in its section).
SMI_KEYS = {
    ('', 'Driver Version'), ('', 'CUDA Version'), ('', 'Attached GPUs'),
    ('GPU', 'Product Name'), ('GPU', 'Product Architecture'), ('GPU', 'Persistence Mode'),
    ('GPU', 'Addressing Mode'), ('GPU', 'VBIOS Version'), ('GPU', 'Compute Mode'), ('GPU', 'Performance State'),
    ('GPU', 'Serial Number'), ('GPU', 'GPU UUID'), ('GPU', 'Virtualization Mode'),
    ('MIG Mode', 'Current'), ('FB Memory Usage', 'Total'), ('FB Memory Usage', 'Used'), ('FB Memory Usage', 'Free'),
    ('GPU Link Info', 'PCIe Generation/Current'), ('Clocks', 'Graphics'), ('Clocks', 'SM'), ('Clocks', 'Memory'),
    ('Max Clocks', 'Graphics'), ('Max Clocks', 'SM'), ('Max Clocks', 'Memory'),
    ('Temperature', 'GPU Current Temp'), ('GPU Power Readings', 'Power Draw'),
    ('GPU Power Readings', 'Current Power Limit'), ('Power Readings', 'Power Draw'), ('Power Readings', 'Power Limit'),
    ('Utilization', 'Gpu'), ('ECC Mode', 'Current'), ('Clocks Event Reasons', 'Active'),
}


def smi_summary(text):
    """A flat dict of the main fields of `nvidia-smi -q` ('Section / Key': value)."""
    if not text:
        return None
    out = {}
    section = ''
    stack = []  # (indent, name)
    for line in text.splitlines():
        if not line.strip() or line.startswith('='):
            continue
        indent = len(line) - len(line.lstrip(' '))
        body = line.strip()
        m = re.match(r'^(.+?)\s+:\s*(.*)$', body)  # 'Key   : value' (a section header has no ' : ')
        k, v = (m.group(1).strip(), m.group(2).strip()) if m else (body, '')
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if not v:
            stack.append((indent, k))
            continue
        section = stack[-1][1] if stack else ''
        if re.match(r'GPU [0-9A-Fa-f:.]+$', section):  # the per-GPU section 'GPU 00000000:...'
            section = 'GPU'
        # Link generation lives two levels down ('GPU Link Info' / 'PCIe Generation' / 'Current').
        if len(stack) >= 2 and stack[-1][1] == 'PCIe Generation' and stack[-2][1] == 'GPU Link Info':
            section, k = 'GPU Link Info', 'PCIe Generation/' + k
        if (section, k) in SMI_KEYS:
            key = f'{section} / {k}' if section else k
            out.setdefault(key, v)
    return out


AIM_VS_TORCH = 0.5
AIM_VS_TFJS = 5.0


def part_result(parts, name, f):
    """The JSON file f that part `name` wrote, or None (no such part or file, or not an object)."""
    r = ((parts.get(name) or {}).get('results') or {}).get(f)
    return r if isinstance(r, dict) else None


def aims(parts):
    """Issue 6's aims per model: {model: {skipgrad, torch, tfjs: {imagesPerSecond, ...}, vsTorch, vsTfjs, met...}}."""
    model = part_result(parts, 'model', 'model-webgpu.json') or {}
    torch = part_result(parts, 'torch', 'torch-ref.json') or {}
    settings = model.get('settings') or {}
    out = {}
    for name in ('AESc', 'AE'):
        rows = [r for r in model.get('rows', []) if isinstance(r, dict) and r.get('model') == name]
        ours = next((r for r in rows if r.get('impl') == 'skipgrad-webgpu'), None)
        tfjs = next((r for r in rows if r.get('impl') == 'tfjs-webgpu'), None)
        ref = next((r for r in torch.get('train', []) if isinstance(r, dict) and r.get('model') == name and 'error' not in r), None)
        if ours is None and ref is None:
            continue
        e = {
            'skipgrad': ours and {'stepMs': ours.get('stepMs'), 'imagesPerSecond': ours.get('imagesPerSecond'),
                                  'size': settings.get('size'), 'batch': settings.get('batch')},
            'torch': ref and {'stepMs': ref.get('stepMs'), 'imagesPerSecond': ref.get('imagesPerSecond'),
                              'size': ref.get('size'), 'batch': ref.get('batch')},
            'tfjs': tfjs and {'stepMs': tfjs.get('stepMs'), 'basis': tfjs.get('stepBasis'), 'error': tfjs.get('error')},
            'vsTorch': None, 'vsTorchMet': None, 'vsTfjs': None, 'vsTfjsLowerBound': False, 'vsTfjsMet': None, 'notes': [],
        }
        ips = (ours or {}).get('imagesPerSecond')
        if ref and ips:
            if (ref.get('size'), ref.get('batch')) != (settings.get('size'), settings.get('batch')):
                e['notes'].append(f"not comparable: skipgrad {settings.get('size')}px batch {settings.get('batch')}, "
                                  f"torch {ref.get('size')}px batch {ref.get('batch')}")
            else:
                e['vsTorch'] = ips / ref['imagesPerSecond']
                e['vsTorchMet'] = e['vsTorch'] >= AIM_VS_TORCH
        ratio = (tfjs or {}).get('stepRatio')
        if isinstance(ratio, (int, float)):
            e['vsTfjs'] = ratio
            e['vsTfjsLowerBound'] = (tfjs or {}).get('stepBasis') == 'lower-bound'
            if (tfjs or {}).get('stepBasis') == 'warm-up':
                # tfjs's warm-up step alone: shader compilation and tf.profile's per-kernel timing in it, so the ratio
                # overstates skipgrad's lead: it decides nothing.
                e['vsTfjsMet'] = None
                e['notes'].append('tfjs-webgpu: only its warm-up step finished (compiles and profiles): not judged')
            else:
                # A lower bound at or over the bar still meets it; under it, it says nothing.
                e['vsTfjsMet'] = True if ratio >= AIM_VS_TFJS else (None if e['vsTfjsLowerBound'] else False)
        out[name] = e
    return out


def aim_lines(a):
    """One line per model saying where the aims stand."""
    def verdict(met):
        return 'met' if met else 'not met' if met is False else 'undecided'
    lines = []
    for name, e in a.items():
        parts_ = []
        if e['vsTorch'] is not None:
            parts_.append(f"{e['skipgrad']['imagesPerSecond']:.1f} images/s = {100 * e['vsTorch']:.0f}% of PyTorch fp32's "
                          f"{e['torch']['imagesPerSecond']:.1f}: {verdict(e['vsTorchMet'])} (aim >= {100 * AIM_VS_TORCH:.0f}%)")
        else:
            parts_.append('vs PyTorch: not measured')
        if e['vsTfjs'] is not None:
            parts_.append(f"{'>' if e['vsTfjsLowerBound'] else ''}{e['vsTfjs']:.1f}x tfjs-webgpu: {verdict(e['vsTfjsMet'])} (aim >= {AIM_VS_TFJS:.0f}x)")
        else:
            parts_.append('vs tfjs-webgpu: not measured')
        lines.append(f"aim {name}: " + '; '.join(parts_ + e['notes']))
    return lines


def tiles_line(parts):
    """What the tiles part found: the step's conv time with chooseTiles' picks and with the fastest shapes."""
    t = part_result(parts, 'tiles', 'tiles-webgpu.json')
    if t is None or not isinstance(t.get('summary'), dict):
        return None
    s = t['summary']
    launches = t.get('launches') or []

    def beaten(l):
        # A pick is beaten by another tile shape, or by the same shape with K split another way.
        best = l.get('best', {})
        return (best.get('tiles') != l.get('pick') or best.get('splits', 1) != l.get('pickSplits', best.get('splits', 1))
                or bool(best.get('prefetch')))

    lost = [l for l in launches if isinstance(l, dict) and beaten(l)]
    worst = max(lost, key=lambda l: l['pickMs'] / l['best']['gpuMs'], default=None)
    line = (f"tiles: the step's convolutions {s['pickMs']:.3f} ms with chooseTiles' picks, {s['bestMs']:.3f} ms with the "
            f"fastest shape per launch ({s['pickOverBest']:.2f}x); {len(lost)} of {len(launches)} picks beaten"
            f"{'' if t.get('complete', True) else ' (incomplete: the part stopped early)'}")
    if worst:
        b = worst['best']['tiles']
        splits = worst['best'].get('splits', 1)
        line += (f"; most by {worst['pickMs'] / worst['best']['gpuMs']:.2f}x: {worst['kernel']} {worst['m']} x {worst['n']} x {worst['k']} "
                 f"on {b['bm']}x{b['bn']}x{b['bk']}/{b['tm']}{'x8' if b.get('tn') == 8 else ''}{f' split {splits} ways' if splits > 1 else ''}"
                 f"{' with the tiles prefetched' if worst['best'].get('prefetch') else ''}")
    # 8 columns per thread (TN = 8, chooseTiles' choice where the tile allows it) against 4: over the launches that
    # tried both, the fastest of each kind.
    both = []
    for l in launches:
        timings = [x for x in (l.get('timings') or []) if isinstance(x, dict) and isinstance(x.get('gpuMs'), (int, float))] if isinstance(l, dict) else []
        wide = [x['gpuMs'] for x in timings if (x.get('tiles') or {}).get('tn') == 8]
        narrow = [x['gpuMs'] for x in timings if (x.get('tiles') or {}).get('tn', 4) == 4]
        if wide and narrow:
            both.append((l.get('count', 1), min(wide), min(narrow)))
    if both:
        wins = sum(1 for _, w, n in both if w < n)
        wide_ms = sum(c * w for c, w, _ in both)
        narrow_ms = sum(c * n for c, _, n in both)
        line += (f"; 8 columns per thread fastest in {wins} of {len(both)} launches swept: {wide_ms:.3f} ms with the fastest "
                 f"such shapes against {narrow_ms:.3f} ms with 4 ({narrow_ms / wide_ms:.2f}x)")
    return line


# A worst error over this (against float64) is not float32 rounding: on lavapipe the esann step's worst was 2.2e-2.
PRECISION_WARN = 0.1


def as_number(v):
    """A number from a JSON value: precision.json writes non-finite errors as strings ('Infinity', 'NaN')."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return float('nan')


def precision_sides(parts):
    """The precision part's sides: [(name, worst error, where)], or [] without the part."""
    p = part_result(parts, 'precision', 'precision.json')
    sides = (p or {}).get('sides')
    if not isinstance(sides, dict):
        return []
    return [(name, as_number((v.get('worst') or {}).get('error')), (v.get('worst') or {}).get('at'))
            for name, v in sides.items() if isinstance(v, dict)]


def precision_warnings(parts):
    """A warning per side whose worst error is not finite or over PRECISION_WARN; one when the part ran but has no sides."""
    if 'precision' in parts and 'skipped' not in (parts['precision'].get('status') or {}) and not precision_sides(parts):
        return ['precision: the part wrote no result to judge (no precision.json with sides)']
    return [f"precision: {name}: worst error {e:.2e} at {at} against float64 (over {PRECISION_WARN}, or not finite: "
            f"wrong numbers, not float32 rounding; precision.js --shadow names the op)" for name, e, at in precision_sides(parts)
            if not e <= PRECISION_WARN]


def precision_line(parts):
    """The precision part in a line: each side's worst error against float64 on the CPU, and where."""
    sides = precision_sides(parts)
    if not sides:
        return None
    o = part_result(parts, 'precision', 'precision.json').get('settings') or {}
    worst = '; '.join(f"{name} {e:.2e} ({at})" for name, e, at in sides)
    return (f"precision: esann {o.get('model')} {o.get('size')}x{o.get('size')} batch {o.get('batch')}, worst error of the loss, "
            f"gradients and running statistics against float64 on the CPU: {worst} (on lavapipe at 256x256 batch 8: "
            f"CPU float32 1.4e-3, webgpu 2.2e-2, PyTorch float32 2.5e-2; bench/results/README.md)")


def profile_line(parts):
    """What the profile part found: the traced step's wall time against its GPU time summed over ops, and the
    untraced steps with and without the runtime's early first submit."""
    p = part_result(parts, 'profile', 'profile-webgpu.json')
    if p is None or not isinstance(p.get('summary'), dict):
        return None
    s = p['summary']
    line = f"profile: traced step {s['wallMs']:.2f} ms wall"
    if s.get('gpuMs') is not None:
        line += f", {s['gpuMs']:.2f} ms GPU time summed over its {s.get('ops')} ops ({s['wallMs'] / s['gpuMs']:.2f}x)"
    u = p.get('untimed')
    if isinstance(u, dict):
        line += (f"; untraced steps {u['earlyFirstSubmitMs']:.2f} ms with the early first submit, {u['noEarlySubmitMs']:.2f} ms "
                 f"without (median of {u['steps']} each)")
    return line


TORCH_KERNEL_OF = {'forward': 'conv2d', 'dgrad': 'conv2dGradInput', 'wgrad': 'conv2dGradWeight'}


def kernels_vs_torch(parts):
    """Each convolution kernel of the step that the torch part timed alone at the same shape: PyTorch fp32's time
    (cuDNN, TF32 off) next to the tiles part's time with chooseTiles' pick and with the fastest candidate."""
    torch_ref = part_result(parts, 'torch', 'torch-ref.json')
    tiles = part_result(parts, 'tiles', 'tiles-webgpu.json')
    if torch_ref is None or tiles is None:
        return []
    launches = [l for l in tiles.get('launches') or [] if isinstance(l, dict) and isinstance(l.get('g'), dict)]
    rows = []
    for c in torch_ref.get('conv') or []:
        if not isinstance(c, dict) or c.get('padding') != 'valid' or not isinstance(c.get('kernels'), dict):
            continue
        n, ch, h, w = c['input']
        for which, kernel in TORCH_KERNEL_OF.items():
            t = c['kernels'].get(which)
            if not isinstance(t, dict):
                continue
            for l in launches:
                g = l['g']
                if (l.get('kernel') == kernel and (g['batch'], g['inChannels'], g['inHeight'], g['inWidth']) == (n, ch, h, w)
                        and g['outChannels'] == c['outChannels'] and g['kernelH'] == g['kernelW'] == c['kernel']
                        and g['strideH'] == g['strideW'] == c['stride'] and g['padTop'] == g['padLeft'] == 0):
                    rows.append({'name': c['name'], 'pass': which, 'kernel': kernel, 'torchMs': t['ms'], 'pickMs': l['pickMs'],
                                 'bestMs': l['best']['gpuMs'], 'pickOverTorch': l['pickMs'] / t['ms'],
                                 'bestOverTorch': l['best']['gpuMs'] / t['ms'], 'count': l.get('count', 1)})
                    break
    return rows


def kernel_lines(rows):
    if not rows:
        return []
    torch_ms = sum(r['torchMs'] * r['count'] for r in rows)
    pick_ms = sum(r['pickMs'] * r['count'] for r in rows)
    best_ms = sum(r['bestMs'] * r['count'] for r in rows)
    lines = [f"conv kernels vs PyTorch fp32, {len(rows)} matched (each times its count in the step): skipgrad {pick_ms:.3f} ms with "
             f"the picks ({pick_ms / torch_ms:.2f}x torch's {torch_ms:.3f} ms), {best_ms:.3f} ms with the fastest candidates "
             f"({best_ms / torch_ms:.2f}x); clocks differ: skipgrad's are GPU timestamps of its pass alone, torch's CUDA events "
             f"around the call (launch gaps included), and 'fastest' is the least of several medians (biased low)"]
    for r in rows:
        lines.append(f"  {r['name']} {r['pass']}: torch {r['torchMs']:.3f} ms, skipgrad {r['pickMs']:.3f} ms "
                     f"({r['pickOverTorch']:.2f}x; fastest {r['bestOverTorch']:.2f}x)")
    return lines


def part(res, name):
    d = os.path.join(res, name)
    if not os.path.isdir(d):
        return None
    out = {'status': read_kv(os.path.join(d, 'status.txt')), 'results': {}}
    for f in sorted(os.listdir(d)):
        p = os.path.join(d, f)
        if f.endswith('.json') and os.path.isfile(p):
            try:
                with open(p) as fh:
                    text = fh.read().strip()
                out['results'][f] = json.loads(text) if text else None
            except Exception as e:  # keep the raw text rather than lose it
                out['results'][f] = {'unparsed': read_text(p, 20000), 'error': str(e)}
    tail = read_text(os.path.join(d, 'output.log'), 6000)
    if tail is not None:
        out['outputTail'] = tail
    return out


def md_table(head, rows):
    out = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    out += ['| ' + ' | '.join(str(c) for c in r) + ' |' for r in rows]
    return '\n'.join(out)


def markdown(report):
    """One markdown page for a run's JSON (what collect.py wrote): the GPU, the aims, and each part."""
    parts = report.get('parts') or {}
    smi = (report.get('nvidiaSmi') or {}).get('summary') or {}
    adapter = ((report.get('gpu') or {}).get('webgpuAdapter') or {})
    lines = [f"# GPU run {report.get('stamp')}: {(report.get('gpu') or {}).get('name')}", '',
             f"Collected {report.get('date')} on host {report.get('host')}. "
             f"WebGPU adapter (Dawn, Vulkan): {adapter.get('description') or adapter.get('device') or '?'} "
             f"(vendor {adapter.get('vendor') or '?'}, architecture {adapter.get('architecture') or '?'})."]
    if smi:
        lines.append('nvidia-smi: ' + '; '.join(f'{k}: {v}' for k, v in smi.items()) + '.')
    run = report.get('run') or {}
    lines += ['', f"Run: {'quick' if str(run.get('quick')) == '1' else 'full'}, {run.get('seconds')} s of a {run.get('budget')} s budget; "
              f"parts ok: {'yes' if report.get('ok') else 'no (failed: ' + ', '.join(report.get('failedParts') or []) + ')'}.", '']
    lines += ['| part | status | seconds |', '|---|---|---|']
    for name, p in parts.items():
        st = p.get('status') or {}
        flag = f"skipped: {st['skipped']}" if 'skipped' in st else ('ok' if st.get('rc') == 0 else f"failed, rc {st.get('rc')}" + (' (timed out)' if st.get('timedOut') else ''))
        lines.append(f"| {name} | {flag} | {st.get('seconds', '')} |")
    lines += ['', '## Aims (issue 6)', '']
    lines += [f'- {l}' for l in aim_lines(report.get('aims') or {})] or ['- not judged: no model part']
    model = part_result(parts, 'model', 'model-webgpu.json')
    if isinstance(model, dict) and model.get('markdown'):
        lines += ['', '## One training step: skipgrad webgpu vs tfjs-webgpu (model part)', '', model['markdown']]
    torch_ref = part_result(parts, 'torch', 'torch-ref.json')
    if isinstance(torch_ref, dict):
        meta = torch_ref.get('meta') or {}
        lines += ['', f"## PyTorch {meta.get('torch', '')} fp32, TF32 off (torch part, {meta.get('deviceName', '')})", '']
        train = [t for t in torch_ref.get('train') or [] if isinstance(t, dict) and 'error' not in t]
        if train:
            lines.append(md_table(['model', 'size', 'batch', 'step ms', 'images/s', 'conv TFLOP/s', 'peak MiB'],
                                  [[t['model'], t['size'], t['batch'], f"{t['stepMs']:.2f}", f"{t['imagesPerSecond']:.1f}",
                                    f"{t.get('convTflopsApprox', 0):.2f}", '' if t.get('peakMemoryMiB') is None else f"{t['peakMemoryMiB']:.0f}"] for t in train]))
        convs = [c for c in torch_ref.get('conv') or [] if isinstance(c, dict) and isinstance(c.get('kernels'), dict)]
        if convs:
            lines += ['', md_table(['conv', 'forward ms (TFLOP/s)', 'dgrad ms (TFLOP/s)', 'wgrad ms (TFLOP/s)'],
                                   [[c['name']] + [f"{c['kernels'][k]['ms']:.3f} ({c['kernels'][k]['tflops']:.2f})" for k in ('forward', 'dgrad', 'wgrad')]
                                    for c in convs])]
    rows = report.get('kernelsVsTorch') or []
    if rows:
        lines += ['', '## Convolution kernels beside PyTorch fp32 (tiles and torch parts)', '', kernel_lines(rows)[0], '',
                  md_table(['conv', 'pass', 'count', 'torch ms', 'skipgrad ms (pick)', 'pick/torch', 'fastest/torch'],
                           [[r['name'], r['pass'], r['count'], f"{r['torchMs']:.3f}", f"{r['pickMs']:.3f}", f"{r['pickOverTorch']:.2f}x",
                             f"{r['bestOverTorch']:.2f}x"] for r in rows])]
    profile = part_result(parts, 'profile', 'profile-webgpu.json')
    if isinstance(profile, dict) and profile.get('markdown'):
        lines += ['', '## Where the step\'s time goes (profile part)', '', profile_line(parts) or '', '', profile['markdown']]
    precision = part_result(parts, 'precision', 'precision.json')
    if isinstance(precision, dict) and precision.get('markdown'):
        lines += ['', '## The step\'s numbers against float64 (precision part)', '', precision_line(parts) or '', '', precision['markdown']]
    tiles = part_result(parts, 'tiles', 'tiles-webgpu.json')
    if isinstance(tiles, dict) and tiles.get('table'):
        lines += ['', '## Convolution launches and tile shapes (tiles part)', '', tiles_line(parts) or '', '', '```', tiles['table'], '```']
    for name, f, title in (('ops', 'ops-webgpu.json', 'Ops: skipgrad webgpu vs tfjs-webgpu (ops part)'),
                           ('host', 'model-webgpu-host.json', 'The host side of a step, Dawn null backend (host part)')):
        j = part_result(parts, name, f)
        if isinstance(j, dict) and j.get('markdown'):
            lines += ['', f'## {title}', '', j['markdown']]
    warnings = report.get('warnings') or []
    if warnings:
        lines += ['', '## Warnings', ''] + [f'- {w}' for w in warnings]
    return '\n'.join(lines) + '\n'


def main_markdown(src, out):
    with open(src) as fh:
        report = json.load(fh)
    out = out or (src[:-5] if src.endswith('.json') else src) + '.md'
    tmp = out + '.tmp'
    with open(tmp, 'w') as fh:
        fh.write(markdown(report))
    os.replace(tmp, out)
    print(f'wrote {out}')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--results')
    ap.add_argument('--bundle', default=None)
    ap.add_argument('--out')
    ap.add_argument('--markdown', metavar='GPU_JSON', help="write a markdown page for this run's JSON (to --out, else next to it)")
    args = ap.parse_args()
    if args.markdown:
        return main_markdown(args.markdown, args.out)
    if not args.results or not args.out:
        ap.error('--results and --out are required (or --markdown GPU_JSON)')
    res = args.results

    run = read_kv(os.path.join(res, 'run.txt'))
    q = read_text(os.path.join(res, 'nvidia-smi-q.txt'))
    before = read_csv(os.path.join(res, 'nvidia-smi-before.csv'))
    after = read_csv(os.path.join(res, 'nvidia-smi-after.csv'))
    summary = smi_summary(q)
    bundle = None
    if args.bundle and os.path.isfile(args.bundle):
        with open(args.bundle) as fh:
            bundle = json.load(fh)

    parts = {}
    for name in ('probe-first', 'probe', 'dispatch', 'host', 'profile', 'ops', 'model', 'torch', 'precision', 'tiles'):
        p = part(res, name)
        if p is not None:
            parts[name] = p
    adapter = None
    probe = parts.get('probe')
    if probe and isinstance(probe['results'].get('adapter.json'), dict):
        adapter = probe['results'].pop('adapter.json')

    gpu_name = None
    if isinstance(before, list) and before and 'name' in before[0]:
        gpu_name = before[0]['name']
    elif summary and summary.get('GPU / Product Name'):
        gpu_name = summary['GPU / Product Name']
    elif adapter and adapter.get('adapter'):
        a = adapter['adapter']
        gpu_name = a.get('description') or a.get('device')

    failed = [n for n, p in parts.items() if n != 'probe-first' and p['status'].get('rc', 0) not in (0,)]
    if 'probe' in parts and not (adapter or {}).get('adapter') and 'probe' not in failed:
        failed.append('probe')
    # Measurements that a part reported as failed inside its JSON (it may still exit 0): list them.
    warnings = []

    def scan(node, where):
        if isinstance(node, dict):
            if isinstance(node.get('error'), str):
                label = node.get('impl') or node.get('name') or node.get('model') or ''
                warnings.append(f"{where}: {label} {node.get('pass', '')}: {node['error']}".replace('  ', ' '))
            for k, v in node.items():
                if k != 'error':
                    scan(v, where)
        elif isinstance(node, list):
            for v in node:
                scan(v, where)

    for n, p in parts.items():
        for f, j in p['results'].items():
            if n == 'precision' and isinstance(j, dict):
                # Its sides' 'error' fields are measurements, judged by precision_warnings; the rest is scanned as usual.
                j = {k: v for k, v in j.items() if k != 'sides'}
            scan(j, f'{n}/{f}')
    warnings += precision_warnings(parts)
    report = {
        'kind': 'skipgrad-gpu-run',
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'stamp': run.get('stamp'),
        'host': platform.node(),
        'gpu': {
            'name': gpu_name,
            'webgpuAdapter': (adapter or {}).get('adapter'),
            'software': (adapter or {}).get('software'),
        },
        'run': run,
        'ok': not failed,
        'aims': aims(parts),
        'kernelsVsTorch': kernels_vs_torch(parts),
        'failedParts': failed,
        'warnings': warnings,
        'nvidiaSmi': {'summary': summary, 'before': before, 'after': after, 'q': q},
        'adapter': adapter,
        'bundle': bundle,
        'parts': parts,
    }
    tmp = args.out + '.tmp'
    with open(tmp, 'w') as fh:
        json.dump(report, fh, indent=2)
        fh.write('\n')
    os.replace(tmp, args.out)

    # A short table last.
    print(f"GPU: {gpu_name}; adapter: {((adapter or {}).get('adapter') or {}).get('description')}")
    for n, p in parts.items():
        st = p['status']
        if 'skipped' in st:
            print(f"  {n:11s} skipped: {st['skipped']}")
        else:
            flag = 'ok' if st.get('rc') == 0 else f"FAILED rc={st.get('rc')}" + (' (timed out)' if st.get('timedOut') else '')
            print(f"  {n:11s} {flag} in {st.get('seconds')} s; files: {', '.join(p['results']) or '-'}")
    for line in aim_lines(report['aims']):
        print(f'  {line}')
    for line in (profile_line(parts), precision_line(parts), tiles_line(parts)):
        if line:
            print(f'  {line}')
    for line in kernel_lines(report['kernelsVsTorch']):
        print(f'  {line}')
    for w in warnings[:20]:
        print(f'  warning: {w}')
    if len(warnings) > 20:
        print(f'  ... {len(warnings) - 20} more warnings in the JSON')
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
