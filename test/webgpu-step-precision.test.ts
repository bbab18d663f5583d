/**
 * The model bench's training step, whole, against float64: the esann AESc (64x64, batch 4, 16 base channels: every
 * convolution kernel, stride phase and output padding of the real network) computes its loss, every parameter's
 * gradient and the batch norm running statistics in float64 on the CPU (the reference), and in float32 on the CPU
 * and on webgpu, from the same weights and batch.
 *
 * webgpu runs in both configurations: as the software adapter runs by default (tile loops rolled, K never split for
 * the forward and input-gradient kernels) and as a hardware GPU runs (software = false: the tile loops unrolled, K
 * split for launches with few workgroups). The software adapter is all CI has, so without the second configuration
 * the code a GPU runs would be checked here only kernel by kernel (webgpu-conv.test.ts).
 *
 * An error is |value - reference| over the tensor's largest reference value, or over 1e-3 of the model's largest
 * gradient where that is larger (a conv bias in front of a training-mode batch norm has gradient 0 exactly: both
 * sides hold rounding noise there). Measured on lavapipe: float32 CPU 1.1e-5 at worst (it accumulates in float64),
 * webgpu 6.5e-5 in both configurations. At 256x256, batch 8 (bench/precision.ts and bench/precision_torch.py, 2026-11-29),
 * the worst errors were 1.4e-3 (CPU float32), 2.2e-2 (webgpu) and 2.5e-2 (PyTorch 1.13 float32 on the CPU): the
 * weight gradients in front of batch norm cancel heavily there. PyTorch float64 matched the float64 reference to
 * 4e-12 at both sizes (bench/results/README.md, "Precision of one training step").
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as sg from '../src/engine/index.js';
import { requestGpuDevice } from '../src/engine/webgpu/device.js';
import { WebGPUBackend } from '../src/engine/webgpu/backend.js';
import { precisionErrors, precisionStep, reportJson, runPrecision, worstError } from '../bench/precision.js';
import { webgpuBackendOrSkip } from './webgpu/gpu.js';

const gpu = await webgpuBackendOrSkip('webgpu step precision tests');

const STEP = { model: 'AESc', size: 64, batch: 4, channels: 16 } as const;

describe.skipIf(!gpu)('the esann training step against float64', () => {
  it('float32 on the CPU and webgpu in both configurations match the float64 step', async () => {
    const cpu = sg.getBackend('cpu');
    const f32 = await precisionStep(cpu, 'float32', STEP);
    const ref = await precisionStep(cpu, 'float64', STEP, f32.state);
    expect(ref.values.size).toBe(1 + 36 + 16); // the loss, 36 parameters, 8 running means and 8 variances
    // The reference really is float64 (weights and batch), and the float32 step really is float32: its error is not 0.
    expect([...ref.state.values()].every((v) => v.data instanceof Float64Array)).toBe(true);
    expect(ref.x).toBeInstanceOf(Float32Array); // drawn in float32 for every side
    const cpuError = worstError(precisionErrors(ref.values, f32.values)).error;
    expect(cpuError).toBeGreaterThan(1e-9);
    expect(cpuError).toBeLessThan(1e-4);

    const hw = await requestGpuDevice();
    expect(hw).not.toBeNull();
    try {
      for (const software of [true, false]) {
        const be = new WebGPUBackend({ ...hw!, software });
        const got = await precisionStep(be, 'float32', STEP);
        const { error, at } = worstError(precisionErrors(ref.values, got.values));
        expect(error, `software=${software}: worst at ${at}`).toBeLessThan(1e-3);
        // What ran: a hardware GPU splits K for the forward and input-gradient launches with few workgroups (the
        // deep layers here), the software adapter never does.
        const split = got.kernels.filter((k) => /^conv2d\/forward|^conv2dGradInput|^convTranspose2d\/forward/.test(k) && k.includes('splits'));
        if (software) expect(split).toEqual([]);
        else expect(split.length).toBeGreaterThan(2);
      }
    } finally {
      hw!.device.destroy();
    }
  });
});

describe('the precision measure', () => {
  it('the errors: against the tensor\'s largest value, or 1e-3 of the largest gradient; NaN is infinite', () => {
    const ref = new Map([['grad a', Float64Array.of(1000, -2)], ['grad b', Float64Array.of(0, 0)], ['m', Float64Array.of(4, 2)]]);
    const got = new Map([['grad a', Float64Array.of(1000, -1)], ['grad b', Float64Array.of(0.5, 0)], ['m', Float64Array.of(4, NaN)]]);
    expect([...precisionErrors(ref, got)]).toEqual([['grad a', 1 / 1000], ['grad b', 0.5], ['m', Infinity]]);
    expect(worstError(precisionErrors(ref, got))).toEqual({ error: Infinity, at: 'm' });
    expect(JSON.parse(reportJson({ error: Infinity, nan: NaN, ok: 1 }))).toEqual({ error: 'Infinity', nan: 'NaN', ok: 1 });
    expect(() => precisionErrors(ref, new Map([['grad a', Float64Array.of(1)]]))).toThrow("precision: 'grad a' has 1 values, the reference 2");
  });

  it('--dump removes an earlier dump\'s files and nothing else, and records the step\'s settings', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'precision-dump-'));
    const foreign = ['package.json', 'results.json', 'settings.json', 'notes.txt', 'webgpu-gpu.notes.txt'];
    for (const f of [...foreign, 'webgpu-gpu.json', 'webgpu-gpu.grad.l1.weight.f64', 'precision-settings.json']) fs.writeFileSync(path.join(dir, f), '{}');
    const r = await runPrecision({ model: 'AE', size: 61, batch: 2, channels: 2, configs: [], dump: dir, out: null, shadow: true });
    expect(Object.keys(r.sides)).toEqual(['cpu float32']);
    expect(r.settings.shadow).toBe(true);
    // --shadow: the op results furthest from float64 on their own inputs, worst first (the CPU's float32 kernels
    // accumulate in float64: each within a few float32 roundings).
    const rows = r.sides['cpu float32'].shadow!;
    expect(rows.length).toBe(8);
    expect(rows.map((x) => x.rounding)).toEqual(rows.map((x) => x.rounding).sort((a, b) => b - a));
    expect(rows[0].rounding).toBeGreaterThan(0);
    expect(rows[0].rounding).toBeLessThan(10);
    expect(rows[0].result).toMatch(/^output \d \[/);
    const files = fs.readdirSync(dir);
    for (const f of foreign) expect(files).toContain(f);
    expect(files.filter((f) => f.startsWith('webgpu-'))).toEqual(['webgpu-gpu.notes.txt']); // the earlier dump's side is gone
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'precision-settings.json'), 'utf8'))).toEqual({ model: 'AE', size: 61, batch: 2, channels: 2 });
    expect(fs.readFileSync(path.join(dir, 'settings.json'), 'utf8')).toBe('{}'); // a user's own file of that common name
    expect(files).toContain('cpu-float64.grad.l1.weight.f64');
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'cpu-float32.json'), 'utf8'))['grad l1.weight']).toEqual([50]); // 2 x 1 x 5 x 5
    fs.rmSync(dir, { recursive: true });
  });
});
