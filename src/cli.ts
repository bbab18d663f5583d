#!/usr/bin/env node
/** The skipgrad command line. */
import { parseArgs } from 'node:util';
import path from 'node:path';
import { formatTable, traced } from './engine/audit/trace.js';
import { useBackend } from './engine/backends.js';
import { zeroGrad } from './engine/autograd.js';
import { checkWritable, makeDirs, writeFileAtomic } from './engine/io/atomic.js';
import { mseLoss } from './engine/ops/loss.js';
import { makeOptimizer } from './experiments/train.js';
import { uniform } from './engine/tensor.js';
import { Autoencoder, inputSizeProblem, presetOptions, trainingBatchProblem, type Preset } from './models/autoencoder.js';
import { analyzeStep, baseChannels, dataFolder, DEFAULTS, evaluateStep, generateSynthetic, reproduce, trainStep, visualizeStep, type ModelName, type RunConfig } from './experiments/pipeline.js';
import { gradcheck } from './engine/audit/gradcheck.js';
import { nanGuardEnabled } from './engine/audit/guard.js';
import { getThreadCount } from './engine/cpu/threads.js';
import { caseInputs, OP_CASES } from './engine/audit/op-cases.js';
import { Rng } from './engine/random.js';
import { SCHEDULE_NAMES, type ScheduleName } from './engine/optim/schedules.js';
import { memory } from './engine/tensor.js';

/** The largest values the size options accept: beyond them a run cannot fit in memory (the paper uses 256, 16, 8). */
const MAX = { size: 4096, channels: 1024, batch: 4096 } as const;

const HELP = `skipgrad: a small, auditable deep-learning engine, and the experiments of "Don't skip the skips"

Usage: skipgrad <command> [options]

Commands:
  reproduce       train AESc and AE on each category, analyse, visualise, evaluate, write report.html
  generate-data   write the built-in synthetic data set (MVTec AD layout) to --data DIR, or to <--out>/data
  train           train one model (--model aesc|ae) on each --category (--resume continues an interrupted run)
  analyze         cosine similarity per layer, clean vs stained (Fig. 3): cosine.json, fig3.svg, fig3.png
  visualize       channel-mean maps of a clean and a stained image (Fig. 2): fig2.png, fig2.json
  evaluate        anomaly detection on the test split: evaluation.json (image and pixel AUROC)
  trace           the audit trace of one training step: trace.json (open in https://ui.perfetto.dev) and a table
  gradcheck       check every op's gradient by central finite differences (float64, CPU); exit 1 on failure
  help            this text

Common options (a command refuses those it does not use, and says which commands take them):
  --backend auto|cpu|webgpu   auto = a hardware GPU adapter if there is one, else the CPU
                              (default: SKIPGRAD_BACKEND if set, else auto)
  --data DIR                  an MVTec AD root (default: the built-in synthetic set, generated under --out)
  --category NAME[,NAME...]   categories (default woven,disc: one texture, one object)
  --model aesc|ae             for train and trace (default aesc)
  --resume                    for train and reproduce: continue each model from its last.safetensors (the
                              epoch after the last one finished) instead of starting over, with the options
                              it was trained with (--epochs may change with --schedule constant or plateau)
  --preset esann|icpr         architecture (default esann)
  --size N                    image side, up to ${MAX.size} (default 64; the paper: 256)
  --channels N                base channel count, up to ${MAX.channels} (default: 16 as in the paper at sizes >= 128, 8 below)
  --epochs N                  (default 8)
  --batch N                   up to ${MAX.batch} (default 8)
  --lr X                      learning rate: the peak of the one-cycle schedules (default 0.005)
  --schedule NAME             for train and reproduce: onecycle (a full cycle over the epochs; default),
                              onecycle-steps (the authors' PyTorch code: a linear cycle made for int(N / 32)
                              steps per epoch (at least 1), N = the train/good images used (--train-limit),
                              but stepped once per epoch, with Adam's beta1 cycled from 0.95: on the paper's
                              data and epochs a slow warm-up from lr/25; under 64 images a whole cycle),
                              plateau (the authors' Keras code: halve after 30 epochs without a 1 dB gain in
                              validation PSNR), constant
  --optimizer adamw|adam      for train, reproduce and trace (default adamw, weight decay 0.01; adam: none)
  --seed N                    0 to 4294967295 (default 0)
  --out DIR                   where everything is written (default runs/latest)
  --train-limit N             images of train/good used, 0 = all (default 40)
  --test-limit N              images per test folder, 0 = all (default 6)
  --analysis-images N         clean/stained pairs for the analysis (default 16)
  --no-progress               for train and reproduce: no progress bars
  --shadow                    for trace: also run each op on the CPU in float64 from the same inputs and show how
                              far each result is from it (error, and in units of float32 rounding)

gradcheck options: --op NAME (cases whose name contains NAME), --seed N, --tolerance T (> 0), --json

Environment: SKIPGRAD_BACKEND (the default of --backend), SKIPGRAD_THREADS (CPU threads; default all cores),
SKIPGRAD_NAN_GUARD=1 (stop at the first op that makes a NaN or an infinity), SKIPGRAD_DEBUG=1 (stack traces).

The paper's configuration on a GPU (the authors' PyTorch code): skipgrad reproduce --size 256 --preset esann
  --epochs 250 --lr 0.01 --schedule onecycle-steps --train-limit 0 --test-limit 0 --data DIR
Their Keras code (icpr): --preset icpr --optimizer adam --lr 0.001 --schedule plateau --batch 16 --epochs 250
`;

function fail(message: string): never {
  process.stderr.write(`skipgrad: ${message}\nRun 'skipgrad help' for usage.\n`);
  process.exit(2);
}

/**
 * Bad values of SKIPGRAD_THREADS and SKIPGRAD_NAN_GUARD are kept by the engine and thrown by the first op that
 * reads them. A command checks them before it starts, so that a bad value stops it once, as a usage error,
 * instead of failing every op it tries (gradcheck would report each case as a failure).
 */
function checkEnvironment(): void {
  try {
    getThreadCount();
    nanGuardEnabled();
  } catch (e) {
    fail((e as Error).message);
  }
}

function parseNumber(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) fail(`--${name} expects a number, got '${v}'`);
  return n;
}

/** A whole number written in decimal digits (not '0x40', '1e3' or '1.0'), from min to max. */
function parseInteger(name: string, v: string | undefined, dflt: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || n < min || n > max) fail(`--${name} expects a whole number from ${min} to ${max}, got '${v}'`);
  return n;
}

/**
 * parseArgs refuses a value that starts with '-' after an option ('--seed -1': "argument is ambiguous ... use
 * --seed=-XYZ"). A negative number is what the user meant there, so it is joined to its option ('--seed=-1'),
 * and the option's own check says what it takes.
 */
function joinNegativeValues(argv: readonly string[], options: Readonly<Record<string, { type: 'string' | 'boolean' }>>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') return [...out, ...argv.slice(i)];
    const name = a.startsWith('--') ? a.slice(2) : '';
    const next = argv[i + 1];
    if (Object.hasOwn(options, name) && options[name].type === 'string' && next !== undefined && /^-\.?\d/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

const GRADCHECK_OPTIONS = { op: { type: 'string' }, seed: { type: 'string' }, tolerance: { type: 'string' }, json: { type: 'boolean' } } as const;

function runGradcheck(argv: string[]): number {
  let values;
  try {
    ({ values } = parseArgs({
      args: joinNegativeValues(argv, GRADCHECK_OPTIONS),
      options: GRADCHECK_OPTIONS,
      strict: true,
    }));
  } catch (e) {
    fail(`gradcheck: ${(e as Error).message}`);
  }
  const seed = parseInteger('seed', values.seed, 0, 0, MAX_SEED);
  const tolerance = parseNumber('tolerance', values.tolerance, 1e-5);
  if (!(tolerance > 0)) fail(`--tolerance expects a number > 0, got '${values.tolerance}'`);
  const cases = OP_CASES.filter((c) => !values.op || c.name.includes(values.op));
  if (cases.length === 0) fail(`gradcheck: no op matches '${values.op}' (ops: ${OP_CASES.map((c) => c.name).join(', ')})`);
  const rng = new Rng(seed);
  const results = cases.map((c) => {
    const inputs = caseInputs(c, rng);
    const t0 = performance.now();
    let r;
    try {
      r = gradcheck(c.fn, inputs, { tolerance, ...(c.check ? { check: c.check } : {}) });
    } catch (e) {
      r = { maxRelError: Infinity, maxAbsError: Infinity, checked: 0, ok: false, worst: `threw: ${(e as Error).message}` };
    }
    for (const t of inputs) t.dispose();
    return { op: c.name, shapes: c.inputs.map((s) => `[${s.shape.join(',')}]`).join(' '), ms: performance.now() - t0, ...r };
  });
  const failed = results.filter((r) => !r.ok);
  if (values.json) {
    process.stdout.write(JSON.stringify({ seed, tolerance, results, failed: failed.length }, null, 2) + '\n');
  } else {
    const rows = results.map((r) => [r.op, r.shapes, r.maxRelError.toExponential(2), r.maxAbsError.toExponential(2), String(r.checked), r.ok ? 'pass' : 'FAIL']);
    process.stdout.write(formatTable(['op', 'input shapes', 'max rel err', 'max abs err', 'elements', 'result'], rows) + '\n\n');
    for (const r of failed) process.stdout.write(`FAIL ${r.op}: worst ${r.worst}\n`);
    const mem = memory();
    process.stdout.write(`${results.length - failed.length}/${results.length} ops pass (float64, central differences, tolerance ${tolerance}, seed ${seed}); live tensors after: ${mem.tensors}\n`);
  }
  return failed.length > 0 ? 1 : 0;
}

const RUN_OPTIONS = {
  backend: { type: 'string' }, data: { type: 'string' }, category: { type: 'string' }, model: { type: 'string' },
  preset: { type: 'string' }, size: { type: 'string' }, channels: { type: 'string' }, epochs: { type: 'string' }, batch: { type: 'string' }, lr: { type: 'string' },
  seed: { type: 'string' }, out: { type: 'string' }, 'train-limit': { type: 'string' }, 'test-limit': { type: 'string' },
  'analysis-images': { type: 'string' }, 'no-progress': { type: 'boolean' }, resume: { type: 'boolean' },
  schedule: { type: 'string' }, optimizer: { type: 'string' }, shadow: { type: 'boolean' },
} as const;

const MAX_SEED = 2 ** 32 - 1;

type RunCommand = 'reproduce' | 'generate-data' | 'train' | 'analyze' | 'visualize' | 'evaluate' | 'trace';

const ALL: readonly RunCommand[] = ['reproduce', 'generate-data', 'train', 'analyze', 'visualize', 'evaluate', 'trace'];
/** The commands that run a model (generate-data only writes images). */
const MODEL_COMMANDS: readonly RunCommand[] = ['reproduce', 'train', 'analyze', 'visualize', 'evaluate', 'trace'];
/** The commands that read (or, for generate-data, write) a data set; trace steps on random input. */
const DATA_COMMANDS: readonly RunCommand[] = ['reproduce', 'generate-data', 'train', 'analyze', 'visualize', 'evaluate'];

/**
 * The commands that use each option: the others refuse it rather than ignore it, so that a run never silently
 * differs from what its command line says. The limits and --seed also decide the synthetic data set a command
 * makes or reads (with --data absent); train reads only train/good, so --test-limit is not its option (and a
 * synthetic set made with any test counts serves it).
 */
const USED_BY: Record<keyof typeof RUN_OPTIONS, readonly RunCommand[]> = {
  backend: MODEL_COMMANDS,
  data: DATA_COMMANDS,
  category: DATA_COMMANDS,
  model: ['train', 'trace'],
  preset: MODEL_COMMANDS, // analyze, visualize and evaluate check it against the checkpoints
  size: ALL,
  channels: MODEL_COMMANDS, // likewise
  epochs: ['train', 'reproduce'],
  batch: ['train', 'reproduce', 'analyze', 'evaluate', 'trace'], // visualize runs its one pair as one batch
  lr: ['train', 'reproduce', 'trace'],
  seed: ALL,
  out: ALL,
  'train-limit': DATA_COMMANDS,
  'test-limit': ['reproduce', 'generate-data', 'analyze', 'visualize', 'evaluate'],
  'analysis-images': ['reproduce', 'analyze'], // visualize draws the first pair only
  'no-progress': ['train', 'reproduce'],
  resume: ['train', 'reproduce'],
  schedule: ['train', 'reproduce'],
  optimizer: ['train', 'reproduce', 'trace'],
  shadow: ['trace'],
};

/** 'a', 'a and b', 'a, b and c'. */
function listed(items: readonly string[]): string {
  return items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

/** A category is a folder name under the data root and under --out: no separators, no '.' or '..'. */
function checkCategory(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) {
    fail(`--category '${name}' is not a folder name (letters, digits, '_', '-' and '.', not starting with '.')`);
  }
}

function oneOf<T extends string>(name: string, v: string | undefined, allowed: readonly T[], dflt: T): T {
  if (v === undefined) return dflt;
  if (!allowed.includes(v as T)) fail(`--${name} must be one of ${allowed.join(', ')}, got '${v}'`);
  return v as T;
}

/** Parses the common options into a RunConfig (clear errors for bad values). */
function runConfig(command: RunCommand, argv: string[]): { cfg: RunConfig; model: ModelName; shadow: boolean } {
  let values;
  try {
    ({ values } = parseArgs({ args: joinNegativeValues(argv, RUN_OPTIONS), options: RUN_OPTIONS, strict: true, allowPositionals: false }));
  } catch (e) {
    fail(`${command}: ${(e as Error).message}`);
  }
  // Every option given that this command does not use, in one message.
  const unused = (Object.keys(USED_BY) as Array<keyof typeof USED_BY>).filter((o) => values[o] !== undefined && !USED_BY[o].includes(command));
  if (unused.length > 0) fail(`${command}: ${unused.map((o) => `--${o} applies to ${listed(USED_BY[o])} only`).join('; ')}`);
  if (command === 'generate-data' && values.data !== undefined && values.out !== undefined) {
    fail('generate-data: --out is not used with --data (the data set is written to --data DIR, or without it to <--out>/data)');
  }
  for (const option of ['out', 'data'] as const) {
    if (values[option] !== undefined && values[option].trim() === '') fail(`--${option} expects a folder, got ''`);
  }
  const lr = parseNumber('lr', values.lr, DEFAULTS.lr);
  if (!(lr > 0)) fail(`--lr expects a number > 0, got '${values.lr}'`);
  const cfg: RunConfig = {
    // (SKIPGRAD_BACKEND is read only by the commands that run a model: generate-data has nothing to say about it.)
    backend: values.backend === undefined && process.env.SKIPGRAD_BACKEND && USED_BY.backend.includes(command)
      ? oneOf('backend (from SKIPGRAD_BACKEND)', process.env.SKIPGRAD_BACKEND, ['auto', 'cpu', 'webgpu'] as const, DEFAULTS.backend)
      : oneOf('backend', values.backend, ['auto', 'cpu', 'webgpu'] as const, DEFAULTS.backend),
    data: values.data ?? null,
    out: values.out ?? DEFAULTS.out,
    categories: values.category !== undefined ? values.category.split(',').map((c) => c.trim()).filter(Boolean) : DEFAULTS.categories,
    models: DEFAULTS.models,
    preset: oneOf<Preset>('preset', values.preset, ['esann', 'icpr'], DEFAULTS.preset),
    size: parseInteger('size', values.size, DEFAULTS.size, 8, MAX.size),
    channels: values.channels === undefined ? null : parseInteger('channels', values.channels, 16, 1, MAX.channels),
    epochs: parseInteger('epochs', values.epochs, DEFAULTS.epochs),
    batch: parseInteger('batch', values.batch, DEFAULTS.batch, 1, MAX.batch),
    lr,
    seed: parseInteger('seed', values.seed, DEFAULTS.seed, 0, MAX_SEED),
    trainLimit: parseInteger('train-limit', values['train-limit'], DEFAULTS.trainLimit, 0),
    testLimit: parseInteger('test-limit', values['test-limit'], DEFAULTS.testLimit, 0),
    analysisImages: parseInteger('analysis-images', values['analysis-images'], DEFAULTS.analysisImages),
    progress: !values['no-progress'],
    resume: values.resume === true,
    schedule: oneOf<ScheduleName>('schedule', values.schedule, SCHEDULE_NAMES, DEFAULTS.schedule),
    optimizer: oneOf('optimizer', values.optimizer, ['adamw', 'adam'] as const, DEFAULTS.optimizer),
  };
  if (cfg.categories.length === 0) fail('--category: no category given');
  cfg.categories.forEach(checkCategory);
  if (cfg.data === null && cfg.size < 16) fail(`--size ${cfg.size}: the synthetic data needs at least 16`);
  if (command !== 'generate-data') {
    // Before any data is generated or folder made: the network must take this size.
    const options = presetOptions(cfg.preset, { skips: true, inputSize: cfg.size });
    const why = inputSizeProblem(options);
    if (why !== null) fail(`--size ${cfg.size} does not fit the ${cfg.preset} network: ${why}`);
    const batchWhy = trainingBatchProblem(options, cfg.batch);
    // Batch norm trains in train, reproduce and trace; analyze, visualize and evaluate run in eval mode.
    if (batchWhy !== null && ['train', 'reproduce', 'trace'].includes(command)) {
      fail(`--batch ${cfg.batch}: at --size ${cfg.size} the ${cfg.preset} network's ${batchWhy}; use --batch 2 or more`);
    }
  }
  const model = oneOf<ModelName>('model', values.model, ['aesc', 'ae'], 'aesc');
  return { cfg, model, shadow: values.shadow === true };
}

async function runTrace(argv: string[]): Promise<number> {
  const { cfg, model, shadow } = runConfig('trace', argv);
  checkWritable(cfg.out);
  const backend = await useBackend(cfg.backend);
  const m = new Autoencoder(presetOptions(cfg.preset, { skips: model === 'aesc', inputSize: cfg.size, baseChannels: baseChannels(cfg), seed: cfg.seed, backend }));
  // The optimizer a training run of these options uses (train.ts: AdamW with its weight decay, or Adam), at --lr
  // and beta1 0.9 (train's schedule sets both per epoch: one-cycle starts at --lr / 25).
  const opt = makeOptimizer(m.parameters(), cfg.lr, cfg.optimizer);
  const x = uniform([cfg.batch, 1, cfg.size, cfg.size], 0, 1, { backend });
  const { trace } = traced(() => {
    const loss = mseLoss(m.forward(x).output, x);
    loss.backward();
    opt.step();
    zeroGrad(m.parameters());
    return loss;
  }, { stats: true, shadow });
  await backend.sync?.();
  await trace.settle();
  const file = path.join(cfg.out, 'trace.json');
  writeFileAtomic(file, trace.toJSON());
  const worst = shadow ? `\n\nThe results furthest from float64 (the same kernel on the CPU in float64 from the same inputs), in units of float32 rounding:\n${trace.shadowTable(10)}` : '';
  process.stdout.write(`${trace.table()}${worst}\n\n${trace.entries.length} op calls, ${(trace.totalFlops / 1e9).toFixed(2)} GFLOP on ${backend.describe()}\nwrote ${file} (open it in https://ui.perfetto.dev or chrome://tracing)\n`);
  return 0;
}

async function runCommand(command: Exclude<RunCommand, 'trace'>, argv: string[]): Promise<number> {
  const { cfg, model } = runConfig(command, argv);
  if (command === 'generate-data') {
    const root = dataFolder(cfg);
    checkWritable(root);
    generateSynthetic(cfg, root, cfg.categories);
    const side = Math.max(cfg.size, 64);
    process.stdout.write(`wrote the synthetic data set (${cfg.categories.join(', ')}; ${side}x${side} images${side !== cfg.size ? ', the least it renders; runs resize them to --size' : ''}) to ${root}\n`);
    return 0;
  }
  checkWritable(cfg.out);
  if (command === 'reproduce') {
    const file = await reproduce(cfg);
    process.stdout.write(`\nreport: ${path.resolve(file)}\n`);
    return 0;
  }
  const backend = await useBackend(cfg.backend);
  for (const category of cfg.categories) {
    makeDirs(path.join(cfg.out, category));
    if (command === 'train') await trainStep(cfg, category, model, backend);
    else if (command === 'analyze') await analyzeStep(cfg, category, backend);
    else if (command === 'visualize') await visualizeStep(cfg, category, backend);
    else if (command === 'evaluate') await evaluateStep(cfg, category, backend);
    process.stdout.write(`${command} ${category}: results in ${path.join(cfg.out, category)}\n`);
  }
  return 0;
}

const COMMANDS: readonly string[] = [...ALL, 'gradcheck'];

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== undefined && (rest.includes('--help') || rest.includes('-h'))) {
    process.stdout.write(HELP);
    return 0;
  }
  if (command !== undefined && COMMANDS.includes(command)) checkEnvironment();
  switch (command) {
    case 'gradcheck':
      return runGradcheck(rest);
    case 'trace':
      return runTrace(rest);
    case 'reproduce':
    case 'generate-data':
    case 'train':
    case 'analyze':
    case 'visualize':
    case 'evaluate':
      return runCommand(command, rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      return 0;
    default:
      fail(`unknown command '${command}'`);
  }
}

main(process.argv.slice(2)).then(
  // Exit explicitly: a WebGPU device (Dawn) would otherwise keep the process alive.
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`skipgrad: ${(e as Error).message.replace(/^skipgrad: /, '')}\n`);
    if (process.env.SKIPGRAD_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    process.exit(1);
  },
);
