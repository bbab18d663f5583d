/**
 * bench/tiles.ts: the convolution launches it reads from a traced step (checked against the esann model's layers,
 * traced on the CPU backend), the candidate tile shapes it times, and one small run on webgpu.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as sg from '../src/engine/index.js';
import { checkTiles, chooseTiles, convSplit, convTileProblem, convTileWork } from '../src/engine/webgpu/kernels/conv.js';
import { esannStepper } from '../bench/model-step.js';
import { convLaunches, describeTiles, launchCandidates, runTiles, tileCandidates, timeCandidates, type ConvLaunch } from '../bench/tiles.js';
import { WebGPUBackend } from '../src/engine/webgpu/backend.js';
import { webgpuBackendOrSkip } from './webgpu/gpu.js';

const gpu = await webgpuBackendOrSkip('webgpu tiles test');

/** The trace of the step runTiles traces (esannStepper: an esann AESc of base width `channels`), batch 2, on the CPU. */
async function tracedStep(size: number, channels: number): Promise<sg.TraceEntry[]> {
  const be = await sg.useBackend('cpu');
  const stepper = esannStepper(be, { model: 'AESc', size, batch: 2, channels });
  const { result: loss, trace } = sg.traced(() => stepper.record());
  loss.dispose();
  stepper.dispose();
  return trace.entries;
}

describe('convLaunches', () => {
  it('finds every convolution kernel launch of an esann AESc step, with its geometry', async () => {
    // Base width 2, 64x64, batch 2: l1 (1 -> 2, stride 1 'same'), l2..l5 (stride 2 'valid'); the decoder mirrors them.
    const entries = await tracedStep(64, 2);
    const launches = convLaunches(entries);
    const total = (k: string) => launches.filter((l) => l.kernel === k).reduce((s, l) => s + l.count, 0);
    const convs = entries.filter((e) => e.op === 'conv2d' && e.phase === 'forward').length;
    const transposed = entries.filter((e) => e.op === 'convTranspose2d').length;
    // Every conv and transposed conv has a weight gradient; every launch in the trace is counted once.
    expect(total('conv2dGradWeight')).toBe(convs + transposed);
    expect(launches.reduce((s, l) => s + l.count, 0))
      .toBe(entries.filter((e) => ['conv2d', 'conv2dGradInput', 'convTranspose2d', 'conv2dGradWeight'].includes(e.op)).length);
    // The first layer: 1 -> 2 channels, 5x5, stride 1, padding 2, on the 64x64 image; its weight gradient is 2 x 25.
    const first = launches[0];
    expect(first).toMatchObject({ kernel: 'conv2d', m: 2, n: 2 * 64 * 64, k: 25, count: 1 });
    expect(first.g).toMatchObject({ batch: 2, inChannels: 1, inHeight: 64, outChannels: 2, outHeight: 64, strideH: 1, padTop: 2 });
    const firstGrad = launches.find((l) => l.kernel === 'conv2dGradWeight' && l.g.inChannels === 1 && l.g.outChannels === 2);
    expect(firstGrad).toMatchObject({ m: 2, n: 25, k: 2 * 64 * 64 });
    // A transposed conv runs the input-gradient kernel: its FLOPs are those of the conv it transposes.
    const t = launches.find((l) => l.ops.includes('convTranspose2d/forward'));
    expect(t?.kernel).toBe('conv2dGradInput');
    expect(t?.flops).toBe(2 * t!.g.batch * t!.g.outChannels * t!.g.outHeight * t!.g.outWidth * t!.g.inChannels * 25);
  });
});

describe('the work chooseTiles asks of the convolution kernels', () => {
  it('is within a quarter of the useful FLOPs over an esann AESc step at 128x128 (tile padding included)', async () => {
    let useful = 0, computed = 0;
    for (const l of convLaunches(await tracedStep(128, 16))) {
      const { m, n } = convTileProblem(l.kernel, l.g);
      const work = 2 * convTileWork(l.kernel, l.g, chooseTiles(m, n));
      // No launch computes more than 5.2x its FLOPs (the worst: a 1-channel output on 4-row tiles).
      expect(work / l.flops, `${l.kernel} ${l.m} x ${l.n} x ${l.k}`).toBeLessThan(5.2);
      useful += l.count * l.flops;
      computed += l.count * work;
    }
    // 1.23 with the fitted tiles; the 16-row minimum and fixed widths they replaced computed 1.52x.
    expect(computed / useful).toBeLessThan(1.25);
  }, 60_000);
});

describe('tileCandidates', () => {
  it("starts with chooseTiles' pick, then distinct valid shapes", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 600 }), fc.integer({ min: 1, max: 1 << 20 }), (m, n) => {
      const c = tileCandidates(m, n);
      expect(c[0]).toEqual(chooseTiles(m, n));
      expect(new Set(c.map((t) => JSON.stringify(t))).size).toBe(c.length);
      for (const t of c) checkTiles(t);
      expect(c.length).toBeGreaterThan(1);
      // 8 columns per thread among them, where the pick has two thread rows or more (the B-tile loads need them).
      const pick = c[0];
      expect(c.some((t) => t.tn === 8)).toBe(pick.bm / pick.tm >= 2);
    }), { numRuns: 300 });
    // The deepest layer's forward conv at 256x256, batch 8: 128 x 128 tiles of 8 x 8 per thread are tried.
    expect(tileCandidates(256, 8 * 13 * 13)).toContainEqual({ bm: 128, bn: 128, bk: 8, tm: 8, tn: 8 });
  });
});

describe('launchCandidates', () => {
  it("starts with the pick as convSplit splits it, then the pick split other ways, then the other shapes", async () => {
    const launches = convLaunches(await tracedStep(64, 8));
    for (const l of launches) {
      const { m, n } = convTileProblem(l.kernel, l.g);
      const c = launchCandidates(l, false);
      const pick = chooseTiles(m, n);
      expect(c[0]).toEqual({ tiles: pick });
      const pickRuns = c.filter((x) => JSON.stringify(x.tiles) === JSON.stringify(pick) && !x.prefetch);
      // One run of the pick with its tiles prefetched (its own split), right after the pick's splits.
      expect(c.filter((x) => x.prefetch)).toEqual([{ tiles: pick, prefetch: true }]);
      expect(c[pickRuns.length]).toEqual({ tiles: pick, prefetch: true });
      const splits = pickRuns.map((x) => convSplit(l.kernel, l.g, x.tiles, { kChunk: x.kChunk }).splits);
      expect(new Set(splits).size, `${l.kernel} ${l.m} x ${l.n} x ${l.k}: distinct splits`).toBe(splits.length);
      // Unsplit is always among them, and so are 2 splits where K has two BK steps.
      expect(splits).toContain(1);
      if (convSplit(l.kernel, l.g, pick).steps >= 2) expect(splits).toContain(2);
      expect(c.slice(pickRuns.length + 1).map((x) => x.tiles)).toEqual(tileCandidates(m, n).slice(1));
    }
  }, 60_000);
});

describe.skipIf(!gpu)('runTiles', () => {
  it('times the pick of every launch on webgpu when there is no time to sweep', async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sg-tiles-')), 'tiles.json');
    const r = await runTiles({ model: 'AE', size: 64, batch: 2, channels: 2, reps: 1, maxSeconds: 0, out });
    const written = JSON.parse(fs.readFileSync(out, 'utf8')) as typeof r;
    expect(written.complete).toBe(true);
    expect(written.launches).toHaveLength(r.launches.length);
    expect(r.summary.distinct).toBe(r.launches.length);
    expect(r.summary.swept).toBe(0); // no time to sweep: only the picks
    // The most work first, so that a sweep cut short has covered what weighs most.
    const work = r.launches.map((l) => l.count * l.flops);
    expect(work).toEqual([...work].sort((x, y) => y - x));
    for (const l of r.launches) {
      expect(l.timings).toHaveLength(1);
      expect(l.pickMs).toBeGreaterThan(0);
      expect(l.best.tiles).toEqual(l.pick);
      expect(l.best.splits).toBe(l.pickSplits);
      expect(l.pickFlops).toBeGreaterThanOrEqual(l.flops);
    }
    expect(r.summary.pickFlops).toBe(r.launches.reduce((s, l) => s + l.count * l.pickFlops, 0));
    expect(r.summary.usefulFlops).toBe(r.launches.reduce((s, l) => s + l.count * l.flops, 0));
    expect(r.summary.pickOverBest).toBe(1);
    expect(describeTiles(r)).toContain('chooseTiles');
  }, 120_000);

  it('times a launch with each candidate shape', async () => {
    const be = await sg.useBackend('webgpu');
    if (!(be instanceof WebGPUBackend)) throw new Error('expected the webgpu backend');
    const g = { batch: 1, inChannels: 3, inHeight: 12, inWidth: 12, outChannels: 5, outHeight: 12, outWidth: 12, kernelH: 3, kernelW: 3, strideH: 1, strideW: 1, padTop: 1, padLeft: 1 };
    const l: ConvLaunch = { kernel: 'conv2dGradWeight', ops: ['conv2dGradWeight/backward'], count: 1, g, m: 5, n: 27, k: 144, flops: 2 * 5 * 144 * 27 };
    const candidates = [
      ...tileCandidates(5, 27).slice(0, 3).map((tiles) => ({ tiles })), { tiles: chooseTiles(5, 27), kChunk: 2 * chooseTiles(5, 27).bk },
      { tiles: chooseTiles(5, 27), prefetch: true },
    ];
    const t = await timeCandidates(be.rt, l, candidates, 2);
    expect(t.map((x) => x.tiles)).toEqual(candidates.map((c) => c.tiles));
    // The last one splits K = 144 into chunks of two BK steps (a reduce pass follows).
    expect(t[3].splits).toBe(Math.ceil(144 / (2 * chooseTiles(5, 27).bk)));
    expect(t.map((x) => x.prefetch)).toEqual([false, false, false, false, true]);
    for (const x of t) expect(x.gpuMs).toBeGreaterThan(0);
  }, 120_000);
});
