/**
 * `node dist/bench/precision.js`: how far one esann training step's numbers are from float64.
 *
 * The step is the model bench's (forward with batch norm in training mode, MSE against the target, backward) on one
 * batch, from the same weights: in float64 on the CPU (the reference), in float32 on the CPU, and in float32 on
 * webgpu in each configuration asked for (--configs):
 *   adapter   the webgpu backend as it runs on this adapter;
 *   gpu       as on a hardware GPU, whatever the adapter (tile loops unrolled, K split for launches with few
 *             workgroups): on a software adapter, a rehearsal of the code a GPU runs;
 *   software  as on a software adapter (tile loops rolled, the forward and input-gradient kernels never split);
 *   none      no webgpu: the CPU's float32 step alone.
 * For the loss, each parameter's gradient and each batch norm running statistic it prints the error: the largest
 * |value - reference| over the tensor's largest |reference| (for a gradient, over 1e-3 of the model's largest
 * gradient where that is larger: a conv bias in front of a training-mode batch norm has gradient 0 exactly, and
 * both sides hold rounding noise there). The CPU's float32 kernels accumulate in float64 (JavaScript's numbers),
 * webgpu's in float32, as GPU kernels do.
 *
 * --shadow also runs each op of the float32 steps again on the CPU in float64 from that op's own inputs (the trace's
 * shadow audit, src/engine/audit/shadow.ts) and lists the op results furthest from it: where the step's error comes in.
 *
 * --dump DIR writes the step's settings, the weights, the batch and every side's gradients as raw float64 files
 * (after removing an earlier dump's) for bench/precision_torch.py, which runs the same step in PyTorch (float32 and float64) and prints its errors beside
 * these. test/webgpu-step-precision.test.ts runs the same comparison at 64x64 and bounds the errors.
 *
 * Options: PRECISION_OPTIONS below (`--help` prints them). Writes bench/results/precision.json (--out).
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as sg from '../src/engine/index.js';
import { writeFileAtomic } from '../src/engine/io/atomic.js';
import { requestGpuDevice } from '../src/engine/webgpu/device.js';
import { describeGpu, WebGPUBackend } from '../src/engine/webgpu/backend.js';
import type { StateValues } from '../src/engine/nn/module.js';
import { nonFiniteAsString, type ShadowRow } from '../src/engine/audit/trace.js';
import { loadShaders } from '../src/engine/webgpu/shaders.js';
import { buildAutoencoder } from '../src/models/autoencoder.js';
import { benchMain, type BenchOptions, ESANN_STEP_OPTIONS, esannStepArgs, listArg, parseBenchArgs, UsageError } from './args.js';
import { machineInfo, markdownTable, type MachineInfo } from './model.js';

export interface PrecisionStep {
  /** 'loss', 'grad <parameter>' and the batch norm buffers' names, as float64. */
  values: Map<string, Float64Array>;
  /** The weights and buffers the step started from. */
  state: StateValues;
  /** The batch. */
  x: Float32Array | Float64Array;
  target: Float32Array | Float64Array;
  /** The kernel notes of the convolutions ('conv2d/forward: conv2d.wgsl, 64x64 tiles ...'). */
  kernels: string[];
  /** The step's trace, settled (with each op's distance from float64 when run with { shadow: true }). */
  trace: sg.Trace;
}

export interface StepShape { model: 'AESc' | 'AE'; size: number; batch: number; channels: number }

/**
 * One step of the esann autoencoder on `be` in `dtype` (weights seed 0, or `state`; input and target uniform in
 * [0, 1), seeds 1 and 2, drawn in float32 on the CPU so every side sees the same values), without the update.
 */
export async function precisionStep(be: sg.Backend, dtype: 'float32' | 'float64', o: StepShape, state?: StateValues,
  opts: { shadow?: boolean } = {}): Promise<PrecisionStep> {
  const net = buildAutoencoder('esann', { skips: o.model === 'AESc', inputSize: o.size, baseChannels: o.channels, seed: 0, backend: be, dtype }).train();
  try {
    if (state) await net.loadStateDict(state);
    const initial = await net.stateValues();
    const shape = [o.batch, 1, o.size, o.size];
    const draw = (seed: number): Float32Array | Float64Array => {
      const t = sg.uniform(shape, 0, 1, { rng: new sg.Rng(seed), backend: 'cpu' });
      const d = t.dataSync();
      t.dispose();
      return d;
    };
    const [xData, targetData] = [draw(1), draw(2)];
    // The step in a scope that keeps only the loss and the trace: the activations are freed when it ends.
    const { loss, x, target, trace } = sg.scope(() => {
      const [x, target] = [xData, targetData].map((d) => sg.fromArray(d, shape, { backend: be, dtype }));
      const { result: l, trace } = sg.traced(() => {
        const l = sg.mseLoss(net.forward(x).output, target);
        l.backward();
        return l;
      }, { shadow: opts.shadow === true });
      return { loss: l, x, target, trace };
    });
    try {
      const values = new Map<string, Float64Array>([['loss', Float64Array.of(await loss.item())]]);
      for (const [n, t] of net.namedParameters()) values.set(`grad ${n}`, Float64Array.from(await t.grad!.data()));
      for (const [n, t] of net.namedBuffers()) values.set(n, Float64Array.from(await t.data()));
      await trace.settle();
      const kernels = trace.entries.filter((e) => e.kernel && e.op.startsWith('conv')).map((e) => `${e.op}/${e.phase}: ${e.kernel}`);
      return { values, state: initial, x: xData, target: targetData, kernels, trace };
    } finally {
      for (const t of [loss, x, target]) t.dispose();
    }
  } finally {
    net.dispose();
  }
}

/** The error of each of `got`'s tensors against `ref` (see the header), by name. */
export function precisionErrors(ref: Map<string, Float64Array>, got: Map<string, Float64Array>): Map<string, number> {
  let gradScale = 0;
  for (const [k, a] of ref) if (k.startsWith('grad ')) for (const v of a) gradScale = Math.max(gradScale, Math.abs(v));
  const errors = new Map<string, number>();
  for (const [k, a] of ref) {
    const b = got.get(k);
    if (!b || b.length !== a.length) throw new Error(`precision: '${k}' has ${b ? b.length : 'no'} values, the reference ${a.length}`);
    let scale = 0, diff = 0;
    for (let i = 0; i < a.length; i++) {
      scale = Math.max(scale, Math.abs(a[i]));
      diff = Math.max(diff, Math.abs(a[i] - b[i]));
    }
    const den = k.startsWith('grad ') ? Math.max(scale, 1e-3 * gradScale) : scale;
    errors.set(k, Number.isNaN(diff) ? Infinity : diff / (den || 1));
  }
  return errors;
}

/** The largest of the errors, and where. */
export function worstError(errors: Map<string, number>): { error: number; at: string } {
  let worst = { error: 0, at: '' };
  for (const [at, error] of errors) if (!(error <= worst.error)) worst = { error, at };
  return worst;
}

const CONFIGS = ['adapter', 'gpu', 'software'] as const;
type Config = (typeof CONFIGS)[number];

export interface PrecisionOptions extends StepShape {
  /** The webgpu configurations to run; none: the CPU's float32 step alone. */
  configs: Config[];
  dump: string | null;
  out: string | null;
  /** Also trace each float32 step with the shadow audit: each op against float64 from its own inputs. */
  shadow: boolean;
}

export interface PrecisionReport {
  kind: 'precision';
  date: string;
  machine: MachineInfo;
  settings: StepShape & { configs: Config[]; shadow: boolean };
  /** Seconds of the float64 step on the CPU (the reference). */
  referenceSeconds: number;
  /**
   * Per side ('cpu float32', 'webgpu <config>'): the worst error and each tensor's (non-finite ones as strings in the
   * JSON), the seconds of its step (with --shadow, the shadow's included); with --shadow, the op results furthest
   * from float64 on their own inputs (Trace.shadowRows), worst first.
   */
  sides: Record<string, { worst: { error: number; at: string }; errors: Record<string, number>; seconds: number; shadow?: ShadowRow[] }>;
  markdown: string;
}

export const PRECISION_OPTIONS: BenchOptions = {
  ...ESANN_STEP_OPTIONS,
  configs: { type: 'string', help: 'webgpu configurations, comma-separated: adapter (as this adapter runs), gpu (as a hardware GPU runs), software; or none (the CPU alone). Default adapter' },
  dump: { type: 'string', help: 'a folder for the weights, batch and gradients as raw float64 (for bench/precision_torch.py)' },
  out: { type: 'string', help: 'default bench/results/precision.json' },
  shadow: { type: 'boolean', help: 'also run each op of the float32 steps again in float64 from its own inputs, and list the ops furthest from it (slower: every tensor is read back)' },
};

/** The options from the command line. */
export function precisionOptionsFromArgs(argv: string[]): PrecisionOptions {
  const a = parseBenchArgs(argv, PRECISION_OPTIONS);
  const given = a.str('configs') ?? 'adapter';
  if (given !== 'none' && given.split(',').includes('none')) throw new UsageError(`--configs: none (the CPU alone) cannot be listed with others, got '${given}'`);
  const configs = given === 'none' ? [] : listArg('configs', given, 'adapter', CONFIGS);
  return { ...esannStepArgs(a), configs, dump: a.str('dump') ?? null, out: a.str('out') ?? path.join('bench', 'results', 'precision.json'), shadow: a.flag('shadow') };
}

/** A file an earlier dump wrote: precision-settings.json, <side>.json, <side>.<name>.f64 (bench/precision_torch.py reads the same). */
const DUMP_FILE = /^(precision-settings\.json|(cpu-float(32|64)|webgpu-(adapter|gpu|software))(\.json|\..+\.f64))$/;

/** Removes an earlier dump's files from DIR (and nothing else), and writes the step's settings there. */
function startDump(dir: string, step: StepShape): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(dir)) if (DUMP_FILE.test(f)) fs.rmSync(path.join(dir, f));
  fs.writeFileSync(path.join(dir, 'precision-settings.json'), JSON.stringify(step));
}

/** Raw float64 files DIR/<side>.<name>.f64 and DIR/<side>.json (the names and shapes). */
function dump(dir: string, side: string, s: PrecisionStep, shape: number[]): void {
  const manifest: Record<string, number[]> = {};
  const put = (name: string, dims: readonly number[], data: ArrayLike<number>): void => {
    manifest[name] = [...dims];
    fs.writeFileSync(path.join(dir, `${side}.${name.replace(/ /g, '.')}.f64`), Float64Array.from(data));
  };
  for (const [n, v] of s.state) put(`state ${n}`, v.shape, v.data);
  put('x', shape, s.x);
  put('target', shape, s.target);
  for (const [n, v] of s.values) put(n, [v.length], v);
  fs.writeFileSync(path.join(dir, `${side}.json`), JSON.stringify(manifest));
}

/** Op results per side in the report and on the page with --shadow. */
const SHADOW_ROWS = 8;

function indent(text: string): string {
  return text.replace(/^/gm, '  ');
}

/** The report as JSON, which has no Infinity or NaN (JSON.stringify would write null): non-finite numbers as strings. */
export function reportJson(report: unknown): string {
  return JSON.stringify(report, nonFiniteAsString, 2) + '\n';
}

export async function runPrecision(o: PrecisionOptions): Promise<PrecisionReport> {
  const cpu = sg.getBackend('cpu');
  const step: StepShape = { model: o.model, size: o.size, batch: o.batch, channels: o.channels };
  if (o.configs.length > 0) {
    // Before the CPU steps (a minute at 256x256): is there an adapter at all?
    await loadShaders();
    const probe = await requestGpuDevice();
    if (!probe) throw new UsageError('no WebGPU adapter (in Node, a Vulkan driver is needed: scripts/provision-vulkan.sh); --configs none compares the CPU alone');
    probe.device.destroy();
  }
  const sides: PrecisionReport['sides'] = {};
  const timed = async (f: () => Promise<PrecisionStep>): Promise<{ step: PrecisionStep; seconds: number }> => {
    const t0 = performance.now();
    const step = await f();
    return { step, seconds: (performance.now() - t0) / 1000 };
  };
  const f32 = await timed(() => precisionStep(cpu, 'float32', o, undefined, { shadow: o.shadow }));
  const ref = await timed(() => precisionStep(cpu, 'float64', o, f32.step.state));
  process.stdout.write(`cpu float64 (the reference): ${ref.seconds.toFixed(1)} s\n`);
  const shape = [o.batch, 1, o.size, o.size];
  if (o.dump) {
    startDump(o.dump, step);
    dump(o.dump, 'cpu-float64', ref.step, shape);
    dump(o.dump, 'cpu-float32', f32.step, shape);
  }
  const add = (side: string, r: { step: PrecisionStep; seconds: number }): void => {
    const errors = precisionErrors(ref.step.values, r.step.values);
    sides[side] = { worst: worstError(errors), errors: Object.fromEntries(errors), seconds: r.seconds };
    process.stdout.write(`${side}: worst error ${sides[side].worst.error.toExponential(2)} (${sides[side].worst.at}), ${r.seconds.toFixed(1)} s\n`);
    if (o.shadow) {
      sides[side].shadow = r.step.trace.shadowRows().slice(0, SHADOW_ROWS);
      process.stdout.write(`  the op results furthest from float64 on their own inputs, in units of float32 rounding:\n${indent(r.step.trace.shadowTable(SHADOW_ROWS))}\n`);
    }
  };
  add('cpu float32', f32);
  let device = 'cpu only';
  for (const config of o.configs) {
    // Each configuration on a device of its own, so one's pools and pipelines do not serve another.
    const gpu = await requestGpuDevice();
    if (!gpu) throw new Error('precision: the WebGPU adapter went away');
    try {
      device = describeGpu(gpu); // the adapter as it is, whatever the configuration
      const be = new WebGPUBackend(config === 'adapter' ? gpu : { ...gpu, software: config === 'software' });
      const r = await timed(() => precisionStep(be, 'float32', o, undefined, { shadow: o.shadow }));
      if (o.dump) dump(o.dump, `webgpu-${config}`, r.step, shape);
      add(`webgpu ${config}`, r);
    } finally {
      gpu.device.destroy();
    }
  }
  const names = [...ref.step.values.keys()];
  const sideNames = Object.keys(sides);
  const markdown = markdownTable(['tensor', ...sideNames], names.map((n) => [n, ...sideNames.map((s) => sides[s].errors[n].toExponential(1))]))
    + `\n| **worst** | ${sideNames.map((s) => `**${sides[s].worst.error.toExponential(2)}**`).join(' | ')} |`;
  const report: PrecisionReport = {
    kind: 'precision', date: new Date().toISOString(), machine: machineInfo(device),
    settings: { ...step, configs: o.configs, shadow: o.shadow }, referenceSeconds: ref.seconds, sides, markdown,
  };
  if (o.out !== null) writeFileAtomic(o.out, reportJson(report));
  return report;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchMain('dist/bench/precision.js', 'one esann training step in float32 (cpu, webgpu) against float64 on the cpu: the error of the loss, every gradient and the running statistics.', PRECISION_OPTIONS, async (argv) => {
    const o = precisionOptionsFromArgs(argv);
    const r = await runPrecision(o);
    process.stdout.write(`\n${r.machine.device}\nesann ${o.model} ${o.size}x${o.size}, batch ${o.batch}, base width ${o.channels}\n${r.markdown}\nwrote ${o.out}\n`);
  });
  process.exit(0);
}
