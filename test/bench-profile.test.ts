/**
 * bench/profile.ts: the per-op breakdown of one training step. Grouping is checked on a hand-made trace; a real
 * profile (a small esann AESc) must account for every op of the traced step, on cpu and on webgpu (where each
 * op also carries its GPU time, from timestamp queries turned on by the trace).
 */
import { describe, expect, it } from 'vitest';
import * as sg from '../src/engine/index.js';
import { groupTrace, runProfile, type ProfileReport } from '../bench/profile.js';
import { WebGPUBackend } from '../src/engine/webgpu/backend.js';
import { webgpuBackendOrSkip } from './webgpu/gpu.js';

const gpu = await webgpuBackendOrSkip('webgpu profile test');

function entry(op: string, phase: 'forward' | 'backward', wallMs: number, flops: number, gpuMs?: number): sg.TraceEntry {
  return {
    index: 0, op, phase, inputs: [], outputs: [], dtype: 'float32', backend: 'test', startMs: 0, wallMs, flops,
    ...(gpuMs !== undefined ? { gpuMs } : {}),
  };
}

describe('groupTrace', () => {
  it('groups by op and phase, sums calls, times and FLOPs, and sorts by kernel time', () => {
    const rows = groupTrace([
      entry('conv2d', 'forward', 2, 4e9), entry('relu', 'forward', 1, 0), entry('conv2d', 'forward', 3, 6e9),
      entry('conv2d', 'backward', 4, 1e9),
    ]);
    expect(rows.map((r) => `${r.op}/${r.phase}`)).toEqual(['conv2d/forward', 'conv2d/backward', 'relu/forward']);
    expect(rows[0]).toMatchObject({ calls: 2, hostMs: 5, flops: 10e9, gpuMs: null });
    expect(rows[0].gflopsPerSecond).toBeCloseTo(2000, 9); // 10 GFLOP in 5 ms
    expect(rows[0].share).toBeCloseTo(0.5, 12);
    expect(rows[2].gflopsPerSecond).toBeNull();
    expect(rows.reduce((s, r) => s + r.share, 0)).toBeCloseTo(1, 12);
  });

  it('uses GPU time, when there is one, for the order, the shares and GFLOP/s', () => {
    const rows = groupTrace([entry('a', 'forward', 10, 1e9, 1), entry('b', 'forward', 1, 1e9, 3)]);
    expect(rows.map((r) => r.op)).toEqual(['b', 'a']);
    expect(rows[0].share).toBeCloseTo(0.75, 12);
    expect(rows[1].gflopsPerSecond).toBeCloseTo(1000, 9); // 1 GFLOP in 1 ms of GPU time
  });
});

function checkReport(r: ProfileReport): void {
  expect(r.rows.reduce((s, row) => s + row.calls, 0)).toBe(r.summary.ops);
  expect(r.rows.reduce((s, row) => s + row.flops, 0)).toBeCloseTo(r.summary.flops, 0);
  expect(r.rows.reduce((s, row) => s + row.share, 0)).toBeCloseTo(1, 9);
  const names = new Set(r.rows.map((row) => `${row.op}/${row.phase}`));
  for (const want of ['conv2d/forward', 'conv2dGradWeight/backward', 'batchNorm2d/forward', 'adam/update']) {
    expect(names.has(want), `${want} in ${[...names].join(', ')}`).toBe(true);
  }
  expect(Number.isFinite(r.summary.loss)).toBe(true);
  expect(r.summary.wallMs).toBeGreaterThan(0);
}

describe('runProfile', () => {
  it('accounts for every op of one esann AESc step on cpu', async () => {
    const r = await runProfile({ backend: 'cpu', model: 'AESc', size: 64, batch: 2, channels: 2, warmup: 1, untimed: 2, out: null });
    checkReport(r);
    expect(r.summary.gpuMs).toBeNull();
    expect(r.untimed).toBeNull(); // the submit policy is webgpu's
  });

  it.skipIf(!gpu)('on webgpu, every op that runs a kernel has a GPU time (reshape is a view: none)', async () => {
    const r = await runProfile({ backend: 'webgpu', model: 'AE', size: 64, batch: 2, channels: 2, warmup: 1, untimed: 2, out: null });
    checkReport(r);
    const kernels = r.rows.filter((row) => row.op !== 'reshape');
    expect(kernels.length).toBeGreaterThan(10);
    for (const row of kernels) expect(row.gpuMs, `${row.op}/${row.phase}`).toBeGreaterThanOrEqual(0);
    expect(r.rows.filter((row) => row.op === 'reshape').every((row) => row.gpuMs === null)).toBe(true);
    expect(r.summary.gpuMs).toBeGreaterThan(0);
    // Untraced steps with and without the early first submit; the runtime keeps its setting afterwards.
    expect(r.untimed).toMatchObject({ steps: 2 });
    expect(r.untimed!.earlyFirstSubmitMs).toBeGreaterThan(0);
    expect(r.untimed!.noEarlySubmitMs).toBeGreaterThan(0);
    expect(((await sg.webgpuBackend()) as WebGPUBackend).rt.opsPerFirstSubmit).toBe(8);
  }, 120_000);
});
