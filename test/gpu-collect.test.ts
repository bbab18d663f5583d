/**
 * bench/gpu/collect.py, which merges a GPU run's parts into gpu-<stamp>.json, on made-up parts: it must keep every
 * part's JSON and status, and judge issue 6's aims (skipgrad webgpu's AESc step at >= 50% of PyTorch fp32's
 * images/s, >= 5x tfjs-webgpu's) only from comparable measurements.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

interface Aim {
  vsTorch: number | null; vsTorchMet: boolean | null; vsTfjs: number | null; vsTfjsLowerBound: boolean; vsTfjsMet: boolean | null; notes: string[];
}

function write(file: string, content: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
}

/** A results folder as run.sh leaves it, with a model part and a torch part. */
function results(modelSize: number, tfjsBasis: string, tfjsRatio: number): string {
  const res = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-collect-'));
  write(path.join(res, 'run.txt'), 'stamp=2026-11-28T0000Z\nquick=0\n');
  write(path.join(res, 'model', 'status.txt'), 'rc=0\nseconds=40\n');
  write(path.join(res, 'model', 'model-webgpu.json'), {
    kind: 'model', backend: 'webgpu', settings: { size: modelSize, batch: 8 },
    rows: [
      { model: 'AESc', impl: 'skipgrad-webgpu', stepMs: 20, stepBasis: 'median', imagesPerSecond: 400 },
      { model: 'AESc', impl: 'tfjs-webgpu', stepMs: 20 * tfjsRatio, stepBasis: tfjsBasis, stepRatio: tfjsRatio, imagesPerSecond: null },
      { model: 'AE', impl: 'skipgrad-webgpu', stepMs: 16, stepBasis: 'median', imagesPerSecond: 500 },
    ],
  });
  write(path.join(res, 'torch', 'status.txt'), 'rc=0\nseconds=30\n');
  write(path.join(res, 'torch', 'torch-ref.json'), {
    kind: 'skipgrad-torch-ref',
    train: [
      { model: 'AESc', size: 256, batch: 8, stepMs: 10, imagesPerSecond: 640 },
      { model: 'AE', size: 256, batch: 8, stepMs: 4, imagesPerSecond: 2000 },
    ],
  });
  return res;
}

/** results(256, 'median', 7.5) with one more part, which passed and wrote `file`. */
function withPart(name: string, file: string, json: unknown): string {
  const res = results(256, 'median', 7.5);
  write(path.join(res, name, 'status.txt'), 'rc=0\nseconds=20\n');
  write(path.join(res, name, file), json);
  return res;
}

async function collect(res: string): Promise<{ json: { ok: boolean; aims: Record<string, Aim>; parts: Record<string, unknown> }; stdout: string }> {
  const out = path.join(res, 'gpu.json');
  const { stdout } = await run('python3', ['bench/gpu/collect.py', '--results', res, '--out', out]);
  return { json: JSON.parse(fs.readFileSync(out, 'utf8')), stdout };
}

describe('bench/gpu/collect.py', () => {
  it('keeps the parts and judges the aims from comparable measurements', async () => {
    const { json, stdout } = await collect(results(256, 'median', 7.5));
    expect(json.ok).toBe(true);
    expect(Object.keys(json.parts).sort()).toEqual(['model', 'torch']);
    expect(json.aims.AESc).toMatchObject({ vsTorch: 400 / 640, vsTorchMet: true, vsTfjs: 7.5, vsTfjsLowerBound: false, vsTfjsMet: true });
    expect(json.aims.AE).toMatchObject({ vsTorch: 0.25, vsTorchMet: false, vsTfjs: null, vsTfjsMet: null });
    expect(stdout).toMatch(/aim AESc: 400\.0 images\/s = 62% of PyTorch fp32's 640\.0: met \(aim >= 50%\); 7\.5x tfjs-webgpu: met \(aim >= 5x\)/);
    expect(stdout).toMatch(/aim AE: 500\.0 images\/s = 25% of PyTorch fp32's 2000\.0: not met .*; vs tfjs-webgpu: not measured/);
  });

  it('does not compare different image sizes, and reads a capped tfjs ratio as a lower bound', async () => {
    const { json, stdout } = await collect(results(128, 'lower-bound', 3));
    expect(json.aims.AESc).toMatchObject({ vsTorch: null, vsTorchMet: null, vsTfjs: 3, vsTfjsLowerBound: true, vsTfjsMet: null });
    expect(json.aims.AESc.notes[0]).toMatch(/not comparable: skipgrad 128px batch 8, torch 256px batch 8/);
    expect(stdout).toMatch(/>3\.0x tfjs-webgpu: undecided/);
    const high = await collect(results(256, 'lower-bound', 6));
    expect(high.json.aims.AESc).toMatchObject({ vsTfjsLowerBound: true, vsTfjsMet: true });
    // tfjs's warm-up step alone (it compiles its shaders and runs under tf.profile): no verdict, however large.
    const warm = await collect(results(256, 'warm-up', 9));
    expect(warm.json.aims.AESc).toMatchObject({ vsTfjs: 9, vsTfjsMet: null });
    expect(warm.json.aims.AESc.notes.join(' ')).toMatch(/only its warm-up step finished/);
  });

  it("sums up the tiles part: the picks' time, the fastest shapes', and the pick beaten the most (by a K split too)", async () => {
    const res = results(256, 'median', 7.5);
    const t = (bm: number, bn: number) => ({ bm, bn, bk: 16, tm: 4 });
    write(path.join(res, 'tiles', 'status.txt'), 'rc=124\nseconds=90\ntimedOut=1\n');
    write(path.join(res, 'tiles', 'tiles-webgpu.json'), {
      kind: 'tiles', complete: false,
      launches: [
        { kernel: 'conv2d', m: 32, n: 1000, k: 400, pick: t(32, 128), pickMs: 1, best: { tiles: t(32, 128), gpuMs: 1 } },
        { kernel: 'conv2dGradWeight', m: 32, n: 400, k: 9000, pick: t(32, 64), pickMs: 3, best: { tiles: t(16, 32), gpuMs: 1.5 } },
        { kernel: 'conv2dGradInput', m: 64, n: 900, k: 800, pick: t(64, 64), pickMs: 2, best: { tiles: t(64, 32), gpuMs: 1.6 } },
        // The same tiles, split into 12 K chunks rather than the pick's 6.
        { kernel: 'conv2d', m: 256, n: 1352, k: 3200, pick: t(128, 64), pickSplits: 6, pickMs: 4, best: { tiles: t(128, 64), splits: 12, gpuMs: 1.6 } },
        // The pick with its own split: not beaten.
        { kernel: 'conv2d', m: 128, n: 6728, k: 1600, pick: t(128, 64), pickSplits: 3, pickMs: 1, best: { tiles: t(128, 64), splits: 3, prefetch: false, gpuMs: 1 } },
        // The pick with its tiles prefetched: beaten.
        { kernel: 'conv2dGradInput', m: 32, n: 1000, k: 400, pick: t(32, 64), pickSplits: 1, pickMs: 1, best: { tiles: t(32, 64), splits: 1, prefetch: true, gpuMs: 0.5 } },
      ],
      summary: { pickMs: 12, bestMs: 7.2, pickOverBest: 12 / 7.2 },
    });
    const { json, stdout } = await collect(res);
    expect(json.ok).toBe(false); // the tiles part timed out
    expect(stdout).toMatch(/tiles: the step's convolutions 12\.000 ms with chooseTiles' picks, 7\.200 ms with the fastest shape per launch \(1\.67x\); 4 of 6 picks beaten \(incomplete: the part stopped early\); most by 2\.50x: conv2d 256 x 1352 x 3200 on 128x64x16\/4 split 12 ways/);
    // A pick beaten most by its own tiles prefetched.
    const tilesFile = path.join(res, 'tiles', 'tiles-webgpu.json');
    const tj = JSON.parse(fs.readFileSync(tilesFile, 'utf8')) as { launches: Array<{ pickMs: number }> };
    tj.launches[5].pickMs = 5;
    write(tilesFile, tj);
    expect((await collect(res)).stdout).toMatch(/most by 10\.00x: conv2dGradInput 32 x 1000 x 400 on 32x64x16\/4 with the tiles prefetched/);
    expect((await collect(res)).stdout).not.toMatch(/8 columns per thread/); // no launch has timings of both kinds

    // 8 columns per thread (TN = 8) against 4: compared over the launches whose timings have both.
    const wide = (bm: number, bn: number) => ({ bm, bn, bk: 8, tm: 8, tn: 8 });
    tj.launches[3] = { ...tj.launches[3], count: 2, pickMs: 4, best: { tiles: wide(128, 128), splits: 6, gpuMs: 0.5 },
      timings: [{ tiles: t(128, 64), splits: 6, gpuMs: 4 }, { tiles: t(128, 64), splits: 12, gpuMs: 1.6 }, { tiles: wide(128, 128), splits: 6, gpuMs: 0.5 }] } as never;
    tj.launches[4] = { ...tj.launches[4], timings: [{ tiles: t(128, 64), splits: 3, gpuMs: 1 }, { tiles: wide(128, 64), splits: 3, gpuMs: 1.25 }] } as never;
    write(tilesFile, tj);
    const out = (await collect(res)).stdout;
    expect(out).toMatch(/most by 10\.00x: conv2dGradInput/);
    // Launch 3 (twice per step): 0.5 against 1.6 ms; launch 4: 1.25 against 1 ms.
    expect(out).toMatch(/8 columns per thread fastest in 1 of 2 launches swept: 2\.250 ms with the fastest such shapes against 4\.200 ms with 4 \(1\.87x\)/);
    tj.launches[5].pickMs = 1;
    write(tilesFile, tj);
    expect((await collect(res)).stdout).toMatch(/most by 8\.00x: conv2d 256 x 1352 x 3200 on 128x128x8\/8x8 split 6 ways/);
  });
  it("sets each conv kernel's time beside PyTorch's at the same shape (valid padding, matched by geometry)", async () => {
    const res = results(256, 'median', 7.5);
    const torchFile = path.join(res, 'torch', 'torch-ref.json');
    const torchRef = JSON.parse(fs.readFileSync(torchFile, 'utf8')) as Record<string, unknown>;
    const k = (ms: number) => ({ ms, gflops: 0, tflops: 0 });
    torchRef.conv = [
      { name: 'AESc l4->l5', input: [8, 128, 29, 29], outChannels: 256, kernel: 5, stride: 2, padding: 'valid',
        kernels: { forward: k(0.1), dgrad: k(0.2), wgrad: k(0.25) } },
      // 'same' padding: not a launch of the step, never matched.
      { name: 'same', input: [4, 32, 128, 128], outChannels: 64, kernel: 5, stride: 2, padding: { left: 1, right: 2, top: 1, bottom: 2 },
        kernels: { forward: k(0.1), dgrad: k(0.1), wgrad: k(0.1) } },
    ];
    write(torchFile, torchRef);
    const g = { batch: 8, inChannels: 128, inHeight: 29, inWidth: 29, outChannels: 256, outHeight: 13, outWidth: 13, kernelH: 5, kernelW: 5, strideH: 2, strideW: 2, padTop: 0, padLeft: 0 };
    const t = { bm: 128, bn: 64, bk: 16, tm: 8 };
    write(path.join(res, 'tiles', 'status.txt'), 'rc=0\nseconds=60\n');
    write(path.join(res, 'tiles', 'tiles-webgpu.json'), {
      kind: 'tiles', complete: true,
      launches: [
        { kernel: 'conv2d', g, count: 2, m: 256, n: 1352, k: 3200, pick: t, pickSplits: 6, pickMs: 0.3, best: { tiles: t, splits: 6, gpuMs: 0.3 } },
        { kernel: 'conv2dGradWeight', g, count: 2, m: 256, n: 3200, k: 1352, pick: t, pickSplits: 6, pickMs: 0.5, best: { tiles: t, splits: 12, gpuMs: 0.4 } },
        // Same shape, other stride: not the torch shape.
        { kernel: 'conv2dGradInput', g: { ...g, strideH: 1, strideW: 1, outHeight: 25, outWidth: 25 }, count: 1, m: 128, n: 6728, k: 6400, pick: t, pickMs: 9, best: { tiles: t, gpuMs: 9 } },
      ],
      summary: { pickMs: 10.6, bestMs: 10.4, pickOverBest: 10.6 / 10.4 }, table: 'a tiles table',
    });
    const { json, stdout } = await collect(res);
    const rows = (json as unknown as { kernelsVsTorch: Array<Record<string, unknown>> }).kernelsVsTorch;
    expect(rows.map((r) => [r.pass, r.kernel])).toEqual([['forward', 'conv2d'], ['wgrad', 'conv2dGradWeight']]);
    expect(rows[0]).toMatchObject({ torchMs: 0.1, pickMs: 0.3, pickOverTorch: expect.closeTo(3, 9) });
    // (0.3 + 0.5) x 2 = 1.6 ms against (0.1 + 0.25) x 2 = 0.7 ms; the fastest (0.3 + 0.4) x 2 = 1.4 ms.
    expect(stdout).toMatch(/conv kernels vs PyTorch fp32, 2 matched \(each times its count in the step\): skipgrad 1\.600 ms with the picks \(2\.29x torch's 0\.700 ms\), 1\.400 ms with the fastest candidates \(2\.00x\)/);
    expect(stdout).toMatch(/AESc l4->l5 wgrad: torch 0\.250 ms, skipgrad 0\.500 ms \(2\.00x; fastest 1\.60x\)/);

    // The markdown page made from the run's JSON where the results came back.
    const md = path.join(res, 'page.md');
    await run('python3', ['bench/gpu/collect.py', '--markdown', path.join(res, 'gpu.json'), '--out', md]);
    const page = fs.readFileSync(md, 'utf8');
    expect(page).toMatch(/^# GPU run 2026-11-28T0000Z/);
    expect(page).toContain('| tiles | ok | 60 |');
    expect(page).toMatch(/- aim AESc: 400\.0 images\/s = 62% of PyTorch fp32's 640\.0: met/);
    expect(page).toContain('| AESc | 256 | 8 | 10.00 | 640.0 |');
    expect(page).toContain('| AESc l4->l5 | wgrad | 2 | 0.250 | 0.500 | 2.00x | 1.60x |');
    expect(page).toContain('| AESc l4->l5 | 0.100 (0.00) | 0.200 (0.00) | 0.250 (0.00) |');
    expect(page).toContain('## Convolution launches and tile shapes (tiles part)');
    expect(page).toContain('a tiles table');
  });
  it('sums up the profile part: wall vs GPU time of the traced step, and the untraced steps with and without the early submit', async () => {
    const res = withPart('profile', 'profile-webgpu.json', {
      kind: 'profile', summary: { wallMs: 30, gpuMs: 12, ops: 135 }, untimed: { steps: 5, earlyFirstSubmitMs: 14.5, noEarlySubmitMs: 15.25 },
    });
    const { stdout } = await collect(res);
    expect(stdout).toMatch(/profile: traced step 30\.00 ms wall, 12\.00 ms GPU time summed over its 135 ops \(2\.50x\); untraced steps 14\.50 ms with the early first submit, 15\.25 ms without \(median of 5 each\)/);
  });
  it('sums up the precision part: each side\'s worst error against float64, in the summary and on the page', async () => {
    const res = withPart('precision', 'precision.json', {
      kind: 'precision', settings: { model: 'AESc', size: 256, batch: 8, channels: 16, configs: ['adapter'] },
      sides: { 'cpu float32': { worst: { error: 0.0014, at: 'grad decoder.0.conv.weight' } }, 'webgpu adapter': { worst: { error: 0.021, at: 'grad encoder.2.conv.weight' } } },
      markdown: '| tensor | cpu float32 | webgpu adapter |',
    });
    const { json, stdout } = await collect(res);
    expect(Object.keys(json.parts)).toContain('precision');
    expect(stdout).toMatch(/precision: esann AESc 256x256 batch 8, worst error of the loss, gradients and running statistics against float64 on the CPU: cpu float32 1\.40e-03 \(grad decoder\.0\.conv\.weight\); webgpu adapter 2\.10e-02 \(grad encoder\.2\.conv\.weight\)/);
    const md = path.join(res, 'page.md');
    await run('python3', ['bench/gpu/collect.py', '--markdown', path.join(res, 'gpu.json'), '--out', md]);
    const page = fs.readFileSync(md, 'utf8');
    expect(page).toContain('## The step\'s numbers against float64 (precision part)');
    expect(page).toContain('| tensor | cpu float32 | webgpu adapter |');
  });
  it('a precision side that is not finite (written as a string) or far over float32 rounding is a warning, not a crash', async () => {
    const res = withPart('precision', 'precision.json', {
      kind: 'precision', settings: { model: 'AESc', size: 256, batch: 8 },
      sides: { 'cpu float32': { worst: { error: 0.0014, at: 'grad a' } }, 'webgpu adapter': { worst: { error: 'Infinity', at: 'grad l1.bias' } },
        'webgpu gpu': { worst: { error: 2.65, at: 'grad b' } } },
    });
    const { json, stdout } = await collect(res);
    const warnings = (json as unknown as { warnings: string[] }).warnings;
    expect(warnings.filter((w) => w.startsWith('precision'))).toEqual([
      'precision: webgpu adapter: worst error inf at grad l1.bias against float64 (over 0.1, or not finite: wrong numbers, not float32 rounding; precision.js --shadow names the op)',
      'precision: webgpu gpu: worst error 2.65e+00 at grad b against float64 (over 0.1, or not finite: wrong numbers, not float32 rounding; precision.js --shadow names the op)',
    ]);
    expect(stdout).toMatch(/precision: .*cpu float32 1\.40e-03 \(grad a\); webgpu adapter inf \(grad l1\.bias\); webgpu gpu 2\.65e\+00 \(grad b\)/);
  });
  it('a precision part that failed inside its JSON, or wrote none that parses, is still a warning', async () => {
    for (const [json, expected] of [
      [{ kind: 'precision', error: 'adapter lost' }, ['precision/precision.json: : adapter lost', 'precision: the part wrote no result to judge (no precision.json with sides)']],
      ['{ not json', [expect.stringMatching(/^precision\/precision\.json: : Expecting property name/), 'precision: the part wrote no result to judge (no precision.json with sides)']],
    ] as const) {
      const res = results(256, 'median', 7.5);
      write(path.join(res, 'precision', 'status.txt'), 'rc=0\nseconds=20\n');
      if (typeof json === 'string') fs.writeFileSync(path.join(res, 'precision', 'precision.json'), json);
      else write(path.join(res, 'precision', 'precision.json'), json);
      const { json: report } = await collect(res);
      expect((report as unknown as { warnings: string[] }).warnings.filter((w) => w.startsWith('precision'))).toEqual(expected);
    }
  });
});
