/**
 * `npm run bench:host` (bench/model.ts --host-only): the webgpu model bench on Dawn's null backend, where commands
 * are recorded and validated but no kernel runs. Its options, its guard against measuring a real device by mistake,
 * and one end-to-end run in a process of its own (Dawn's options are read once per process). The null backend
 * needs no Vulkan driver, so the end-to-end run needs no adapter.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { modelOptionsFromArgs, runModelBench, type ModelReport } from '../bench/model.js';
import { haveGpu } from './webgpu/gpu.js';

const run = promisify(execFile);
const GPU = await haveGpu();
const savedDawnOptions = process.env.SKIPGRAD_DAWN_OPTIONS;

afterEach(() => {
  if (savedDawnOptions === undefined) delete process.env.SKIPGRAD_DAWN_OPTIONS;
  else process.env.SKIPGRAD_DAWN_OPTIONS = savedDawnOptions;
});

describe('bench/model.ts --host-only', () => {
  it('selects webgpu on the null backend with its own defaults, and refuses other backends', () => {
    const o = modelOptionsFromArgs(['--host-only']);
    expect(o).toMatchObject({ hostOnly: true, backends: ['webgpu'], size: 64, batch: 4, reps: 10, tfjsReps: 10 });
    expect(process.env.SKIPGRAD_DAWN_OPTIONS).toMatch(/(^|\s)backend=null$/);
    expect(modelOptionsFromArgs(['--host-only', '--size', '96', '--reps', '3'])).toMatchObject({ size: 96, reps: 3, tfjsReps: 3 });
    expect(() => modelOptionsFromArgs(['--host-only', '--backends', 'cpu,webgpu'])).toThrow(/--host-only measures webgpu alone, got --backends cpu,webgpu/);
    expect(modelOptionsFromArgs([]).hostOnly).toBe(false);
  });

  it.skipIf(!GPU)('refuses to run on a device that is not the null backend, naming the device', async () => {
    const o = { ...modelOptionsFromArgs(['--host-only', '--reps', '1']), outDir: fs.mkdtempSync(path.join(os.tmpdir(), 'sg-host-')), log: () => {} };
    await expect(runModelBench(o)).rejects.toThrow(/--host-only: the WebGPU device is webgpu: .* not Dawn's null backend/);
    expect(fs.readdirSync(o.outDir)).toEqual([]);
  });

  it('measures skipgrad and tfjs-webgpu steps on the null backend and writes model-webgpu-host.json', async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-host-'));
    await run(process.execPath, ['--import', 'tsx', 'bench/model.ts', '--host-only', '--models', 'AE', '--size', '64', '--batch', '2',
      '--reps', '2', '--tfjs-reps', '1', '--out-dir', out], { maxBuffer: 1 << 26 });
    expect(fs.readdirSync(out)).toEqual(['model-webgpu-host.json']);
    const r = JSON.parse(fs.readFileSync(path.join(out, 'model-webgpu-host.json'), 'utf8')) as ModelReport;
    expect(r.complete).toBe(true);
    expect(r.machine.device).toMatch(/null-backend/);
    expect(String(r.settings.dawn)).toMatch(/null backend/);
    expect(r.rows.map((row) => row.impl)).toEqual(['skipgrad-webgpu', 'tfjs-webgpu']);
    for (const row of r.rows) {
      expect(row.error).toBeUndefined();
      expect(row.stepMs).toBeGreaterThan(0);
      expect(row.firstLoss).toBeNull(); // nothing ran: no loss to report
    }
    expect(r.rows[1].stepRatio).toBeGreaterThan(0);
  });
});
