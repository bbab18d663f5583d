/**
 * `npm run bench`: the op bench (bench/ops.ts: conv2d at ops-shapes.ts' shapes, plus convTranspose2d, upsampleNearest2d,
 * batchNorm2d and the AdamW update) and the model bench (bench/model.ts: one AESc / AE training step) in one run,
 * skipgrad against TensorFlow.js on the CPU and on WebGPU, and the webgpu step's host side alone (bench/model.ts
 * --host-only, in a process of its own: Dawn's null backend is chosen when Dawn starts). Writes
 *   bench/results/ops-<backend>.json, bench/results/model-<backend>.json, model-webgpu-host.json   (each part's report)
 *   bench/results/latest.json   (all of them, with the machine and the date)
 *   bench/results/latest.md     (markdown tables with the ratios, for the README)
 *
 * Options: BENCH_OPTIONS below, and those of the two parts (bench/ops.ts OPS_OPTIONS, bench/model.ts MODEL_OPTIONS),
 * passed to both parts where they apply (`--help` prints them all). --reps is the op bench's; --model-reps and
 * --model-cap are the model bench's.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as sg from '../src/engine/index.js';
import { writeFileAtomic } from '../src/engine/io/atomic.js';
import { type BenchArgs, benchMain, type BenchOptions, parseBenchArgs } from './args.js';
import { machineInfo, MODEL_OPTIONS, type ModelBenchOptions, modelOptionsFromArgs, runModelBench, type ModelReport } from './model.js';
import { OPS_OPTIONS, type OpsBenchOptions, opsOptionsFromArgs, runOpsBench, type OpsReport } from './ops.js';

/** bench.ts's own options. */
const BENCH_OPTIONS: BenchOptions = {
  'skip-ops': { type: 'boolean', help: 'leave the op bench out' },
  'skip-model': { type: 'boolean', help: 'leave the model bench out' },
  'skip-host': { type: 'boolean', help: "leave the webgpu step's host-only run out" },
  compose: { type: 'boolean', help: 'measure nothing: write latest.json / latest.md from the per-part JSON files already in bench/results' },
};
/** All of them: the parts' options (not --host-only: the host-only run is a part of its own here), with this command's help lines. */
const { 'host-only': _hostOnly, ...modelPartOptions } = MODEL_OPTIONS;
const ALL_OPTIONS: BenchOptions = { ...OPS_OPTIONS, ...modelPartOptions, ...BENCH_OPTIONS,
  reps: { type: 'string', help: 'op bench repetitions (default 5)' },
  'tfjs-reps': { type: 'string', help: 'timed repetitions for tfjs (ops default min(reps, 3), model min(model-reps, 2))' },
  cap: { type: 'string', help: 'seconds after which a tfjs run is stopped (ops default 120, model default 300)' },
  quick: { type: 'boolean', help: 'a short run: ops --quick, model AESc at 128 with 1 timed step' },
  'model-reps': { type: 'string', help: 'timed training steps for skipgrad (default 2)' },
  'model-cap': { type: 'string', help: 'the model bench\'s tfjs cap alone (default --cap, else 300)' },
};

const argv = process.argv.slice(2);
let values!: BenchArgs, opsOptions!: OpsBenchOptions, modelOptions!: ModelBenchOptions;
await benchMain('dist/bench/bench.js', 'the op bench and the model bench in one run, skipgrad vs tfjs; writes bench/results/latest.json and latest.md.', ALL_OPTIONS,
  async () => {
    values = parseBenchArgs(argv, ALL_OPTIONS);
    opsOptions = opsOptionsFromArgs(argv, ALL_OPTIONS);
    modelOptions = modelOptionsFromArgs(argv, { inheritReps: false, also: ALL_OPTIONS });
  });
const compose = values.flag('compose');
const readPart = <T>(file: string): T[] => {
  const f = path.join('bench', 'results', file);
  return fs.existsSync(f) ? [JSON.parse(fs.readFileSync(f, 'utf8')) as T] : [];
};
const started = new Date();
const t0 = performance.now();

let gpuDescription = 'not measured';
if (!compose && (opsOptions.backends.includes('webgpu') || modelOptions.backends.includes('webgpu'))) {
  const gpu = await sg.webgpuBackend().catch(() => null);
  gpuDescription = gpu ? gpu.describe() : 'no WebGPU adapter (webgpu comparisons skipped)';
}

const ops: OpsReport[] = compose ? [...readPart<OpsReport>('ops-cpu.json'), ...readPart<OpsReport>('ops-webgpu.json')]
  : values.flag('skip-ops') ? [] : await runOpsBench(opsOptions);
const models: ModelReport[] = compose ? [...readPart<ModelReport>('model-cpu.json'), ...readPart<ModelReport>('model-webgpu.json')]
  : values.flag('skip-model') ? [] : await runModelBench(modelOptions);
/** The host-only model bench, in a child process (it needs Dawn started with the null backend). */
function runHostBench(): ModelReport[] {
  const ts = import.meta.url.endsWith('.ts');
  const script = fileURLToPath(new URL(ts ? './model.ts' : './model.js', import.meta.url));
  const models = argv.includes('--models') ? ['--models', argv[argv.indexOf('--models') + 1]] : [];
  try {
    execFileSync(process.execPath, [...(ts ? ['--import', 'tsx'] : []), script, '--host-only', ...models], { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (e) {
    process.stderr.write(`\nhost-only bench failed: ${(e as Error).message}\n`);
    return [];
  }
  return readPart<ModelReport>('model-webgpu-host.json');
}
const hostModels: ModelReport[] = compose ? readPart<ModelReport>('model-webgpu-host.json')
  : values.flag('skip-host') || !modelOptions.backends.includes('webgpu') ? [] : runHostBench();
if (compose) {
  const gpu = [...ops, ...models].find((r) => r.backend === 'webgpu');
  if (gpu) gpuDescription = gpu.machine.device;
}
const minutes = (performance.now() - t0) / 60000;

const machine = { ...machineInfo(sg.getBackend('cpu').describe()), gpu: gpuDescription, threads: process.env.SKIPGRAD_THREADS ?? `all cores (${os.cpus().length})` };
const latest = {
  date: started.toISOString(), minutes: Number(minutes.toFixed(1)), machine, argv,
  model: models, host: hostModels, ops,
};
writeFileAtomic(path.join('bench', 'results', 'latest.json'), JSON.stringify(latest, null, 2) + '\n');

const md: string[] = [];
md.push('# skipgrad benchmarks', '');
if (compose) {
  const when = (r: { date: string }): string => `${r.date.slice(0, 16).replace('T', ' ')} UTC`;
  const dates = [...[...ops, ...models].map((r) => `${r.kind} ${r.backend} ${when(r)}`), ...hostModels.map((r) => `host-only webgpu ${when(r)}`)];
  md.push(`Composed from the per-part results (${dates.join('; ')}).`, '');
} else {
  md.push(`${started.toISOString().slice(0, 10)}, \`npm run bench${argv.length ? ' -- ' + argv.join(' ') : ''}\` (${minutes.toFixed(0)} min).`, '');
}
md.push(`Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.platform}, Node ${machine.node}; skipgrad cpu threads: ${machine.threads}.`);
md.push(`GPU adapter: ${gpuDescription}.`, '');
if (models.length) {
  const names = [...new Set(models.flatMap((r) => r.rows.map((row) => row.model)))];
  const setting = (r: ModelReport): string => `${String(r.settings.size)}x${String(r.settings.size)}, batch ${String(r.settings.batch)}`;
  const same = models.every((r) => setting(r) === setting(models[0]));
  const s = models[0].settings;
  md.push(`## One training step: esann ${names.join(' / ')}${same ? `, ${setting(models[0])}` : ''}`, '');
  md.push(`Forward (training-mode batch norm) + MSE + gradients of all parameters + ${String(s.optimizer)}; the same network and initial weights in TensorFlow.js 4.22 layers (numerical parity: test/bench-parity.test.ts). Median of the timed steps after a warm-up; tfjs runs are stopped at a cap.`, '');
  for (const r of models) {
    const where = r.backend === 'cpu' ? 'CPU: skipgrad cpu vs tfjs cpu and tfjs wasm' : `WebGPU: skipgrad webgpu vs tfjs webgpu (${r.machine.device.replace(/^webgpu: /, '')})`;
    md.push(`### ${where}${same ? '' : `, ${setting(r)}`}`, '');
    md.push(`${String(r.settings.reps)} timed step(s) (tfjs: ${String(r.settings.tfjsReps)}), tfjs cap ${String(r.settings.capSeconds)} s.`, '');
    md.push(r.markdown, '');
  }
  md.push(`${String(models[0].settings.note)}.`, '');
}
for (const r of hostModels) {
  md.push(`### The WebGPU step's host side alone (Dawn's null backend), ${String(r.settings.size)}x${String(r.settings.size)}, batch ${String(r.settings.batch)}`, '');
  md.push("Every command recorded and validated, no kernel run: what a step costs the CPU (engine, autograd, AdamW, WebGPU calls), the floor under the step time on any GPU. Median of " +
    `${String(r.settings.reps)} steps after a warm-up (\`npm run bench:host\`).`, '');
  md.push(r.markdown, '');
}
if (ops.length) {
  md.push('## Ops at AESc and icpr layer shapes (and one other conv shape)', '');
  for (const r of ops) {
    md.push(`### ${r.backend === 'cpu' ? 'CPU: skipgrad cpu vs tfjs cpu and tfjs wasm' : `WebGPU: skipgrad webgpu vs tfjs webgpu (${r.machine.device.replace(/^webgpu: /, '')})`}`, '');
    md.push(r.markdown, '');
    const p = r.parity.map((x) => x.relDiff?.toExponential(1) ?? 'n/a').join(', ');
    md.push(`Forward parity of conv2d vs tfjs (relative difference of the output sums): ${p}.`, '');
  }
  md.push(`${String(ops[0].settings.note)}.`, '');
}
writeFileAtomic(path.join('bench', 'results', 'latest.md'), md.join('\n'));
process.stdout.write(`\nwrote bench/results/latest.json and bench/results/latest.md (${minutes.toFixed(1)} min)\n`);
process.exit(0);
