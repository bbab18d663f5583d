/**
 * The op bench beyond conv2d (part of `npm run bench:ops`): the other ops of an AESc / AE training step,
 * at the paper's shapes (esann, 256x256, batch 8; --quick: batch 2), skipgrad against tfjs where tfjs has the op.
 *
 *   convTranspose2d  l9: [8,32,126,126] -> [8,16,256,256], 5x5 stride 2, output padding 1 (no bias)
 *                    tfjs: tf.conv2dTranspose with outputShape 256 and 'valid' padding, the same values.
 *                    passes: forward; gradFull = forward + input and weight gradients (dy = 1).
 *   upsampleNearest2d  icpr's last upsample: [8,16,128,128] -> [8,16,256,256]  (tfjs: tf.image.resizeNearestNeighbor)
 *                    passes: forward; gradInput = forward + input gradient.
 *   batchNorm2d      training mode at l2: [8,32,126,126]  (tfjs: tf.moments + tf.batchNorm, as its layers do)
 *                    passes: forward; gradFull = forward + gradients of x, gamma and beta (dy = 1).
 *   adamw            one AdamW update of all 2.18 M AESc parameters (36 tensors) from given gradients
 *                    (tfjs: p *= 1 - lr wd, then tf.train.adam's applyGradients, as bench/model-tfjs.ts).
 * Times include the device finishing (tfjs: the results read back; skipgrad: the backend's sync).
 */
import type * as tfNs from '@tensorflow/tfjs';
import * as sg from '../src/engine/index.js';
import { sizeOf } from '../src/engine/dtype.js';
import { buildAutoencoder } from '../src/models/autoencoder.js';
import { waitFor, type Tf } from './model-tfjs.js';
import type { TfjsBackendName, WorkerMessage } from './model-worker.js';
import { repeatPhase, runTfjsWorker, timeIt, type PhaseTiming } from './tfjs-run.js';

export type ExtraOpName = 'convTranspose2d' | 'upsampleNearest2d' | 'batchNorm2d' | 'adamw';
export type ExtraPass = 'forward' | 'gradInput' | 'gradFull' | 'update';

export interface ExtraOpJob {
  op: ExtraOpName;
  passes: ExtraPass[];
  batch: number;
  warmup: number;
  reps: number;
  seed: number;
  /** adamw: the parameter shapes. */
  paramShapes?: number[][];
}

export interface ExtraOpSpec {
  op: ExtraOpName;
  name: string;
  passes: ExtraPass[];
}

export function extraOps(batch: number): ExtraOpSpec[] {
  return [
    { op: 'convTranspose2d', name: `convT l9 [${batch},32,126,126] -> 16, 5x5 s2 op1`, passes: ['forward', 'gradFull'] },
    { op: 'upsampleNearest2d', name: `upsample x2 [${batch},16,128,128]`, passes: ['forward', 'gradInput'] },
    { op: 'batchNorm2d', name: `batchNorm2d train [${batch},32,126,126]`, passes: ['forward', 'gradFull'] },
    { op: 'adamw', name: 'AdamW update, AESc 2.18 M params', passes: ['update'] },
  ];
}

const SHAPES = {
  convTranspose2d: { x: (n: number) => [n, 32, 126, 126], w: [32, 16, 5, 5], out: (n: number) => [n, 16, 256, 256] },
  upsampleNearest2d: { x: (n: number) => [n, 16, 128, 128] },
  batchNorm2d: { x: (n: number) => [n, 32, 126, 126] },
};

function values(seed: number, n: number, lo = -1, hi = 1): Float32Array {
  const rng = new sg.Rng(seed);
  return Float32Array.from({ length: n }, () => rng.uniform(lo, hi));
}

const nhwc = (s: readonly number[]): [number, number, number, number] => [s[0], s[2], s[3], s[1]];

/** AdamW settings of both sides. */
const LR = 1e-3, WD = 1e-2;

// ------------------------------------------------------------------ tfjs side (runs in the child process, bench/model-worker.ts)

export async function runTfjsExtraOp(tf: Tf, job: ExtraOpJob, post: (m: WorkerMessage) => void, setupMs: number): Promise<void> {
  post({ event: 'info', backend: tf.getBackend(), setupMs });
  const n = job.batch;
  /** The tensors one pass computes (kept out of the tidy, read back asynchronously, then freed). */
  let compute: (pass: ExtraPass) => tfNs.Tensor[];
  if (job.op === 'convTranspose2d') {
    // Values: layout does not matter for timing; the same count and shapes as skipgrad's.
    const xs = SHAPES.convTranspose2d.x(n), ws = SHAPES.convTranspose2d.w;
    const x = tf.tensor4d(values(job.seed, sizeOf(xs)), nhwc(xs));
    const w = tf.tensor4d(values(job.seed + 1, sizeOf(ws), -0.1, 0.1), [ws[2], ws[3], ws[1], ws[0]]);
    const outShape = nhwc(SHAPES.convTranspose2d.out(n));
    const f = (a: tfNs.Tensor, b: tfNs.Tensor): tfNs.Tensor => tf.conv2dTranspose(a as tfNs.Tensor4D, b as tfNs.Tensor4D, outShape, 2, 'valid');
    const dy = tf.tidy(() => tf.onesLike(f(x, w)));
    compute = (pass) => pass === 'forward' ? [f(x, w)] : tf.grads(f)([x, w], dy);
  } else if (job.op === 'upsampleNearest2d') {
    const xs = SHAPES.upsampleNearest2d.x(n);
    const x = tf.tensor4d(values(job.seed, sizeOf(xs)), nhwc(xs));
    const f = (a: tfNs.Tensor): tfNs.Tensor => tf.image.resizeNearestNeighbor(a as tfNs.Tensor4D, [xs[2] * 2, xs[3] * 2], false, false);
    const dy = tf.tidy(() => tf.onesLike(f(x)));
    compute = (pass) => pass === 'forward' ? [f(x)] : [tf.grad(f)(x, dy)];
  } else if (job.op === 'batchNorm2d') {
    const xs = SHAPES.batchNorm2d.x(n);
    const x = tf.tensor4d(values(job.seed, sizeOf(xs)), nhwc(xs));
    const gamma = tf.ones([xs[1]]), beta = tf.zeros([xs[1]]);
    const f = (a: tfNs.Tensor, g: tfNs.Tensor, b: tfNs.Tensor): tfNs.Tensor => {
      const { mean, variance } = tf.moments(a, [0, 1, 2]);
      return tf.batchNorm(a, mean, variance, b as tfNs.Tensor1D, g as tfNs.Tensor1D, 1e-5);
    };
    const dy = tf.tidy(() => tf.onesLike(f(x, gamma, beta)));
    compute = (pass) => pass === 'forward' ? [f(x, gamma, beta)] : tf.grads(f)([x, gamma, beta], dy);
  } else {
    const shapes = job.paramShapes ?? [];
    const vars = shapes.map((s, i) => tf.variable(tf.tensor(values(job.seed + i, sizeOf(s), -0.05, 0.05), s), true, `p${i}`));
    const named = shapes.map((s, i) => ({ name: `p${i}`, tensor: tf.tensor(values(job.seed + 100 + i, sizeOf(s), -1e-3, 1e-3), s) }));
    const opt = tf.train.adam(LR, 0.9, 0.999, 1e-8);
    compute = () => {
      for (const v of vars) v.assign(tf.mul(v, 1 - LR * WD));
      opt.applyGradients(named);
      // Reading the last parameter waits for every update before it (device queues run in order).
      return [tf.clone(vars[vars.length - 1])];
    };
  }
  // dy (ones of the output's shape) is made once, before the timed runs, on both sides; tf.grad(s) runs the forward
  // itself. Each run waits for its outputs by reading one element of each (waitFor).
  const run = async (pass: ExtraPass): Promise<void> => {
    const outs = tf.tidy(() => compute(pass));
    await waitFor(tf, outs);
    tf.dispose(outs);
  };
  for (const pass of job.passes) await repeatPhase(post, pass, job.warmup, job.reps, () => run(pass));
  post({ event: 'done' });
}

// ------------------------------------------------------------------ skipgrad side

async function benchSkipgradExtra(be: sg.Backend, spec: ExtraOpSpec, batch: number, reps: number, seed: number): Promise<Map<ExtraPass, number>> {
  const out = new Map<ExtraPass, number>();
  const done = async (): Promise<void> => {
    await be.sync?.();
  };
  const o = { backend: be };
  if (spec.op === 'adamw') {
    const model = buildAutoencoder('esann', { skips: true, seed, backend: be });
    const params = model.parameters();
    params.forEach((p, i) => {
      p.grad = sg.fromArray(values(seed + 100 + i, p.size, -1e-3, 1e-3), p.shape, o).keep();
    });
    const opt = new sg.Adam(params, { lr: LR, weightDecay: WD, decoupled: true });
    out.set('update', await timeIt(async () => {
      opt.step();
      await done();
    }, 1, reps));
    opt.dispose();
    model.dispose();
    return out;
  }
  const tensors: sg.Tensor[] = [];
  const keep = (t: sg.Tensor): sg.Tensor => {
    tensors.push(t.keep());
    return t;
  };
  let f: () => sg.Tensor;
  let grads: sg.Tensor[];
  if (spec.op === 'convTranspose2d') {
    const xs = SHAPES.convTranspose2d.x(batch), ws = SHAPES.convTranspose2d.w;
    const x = keep(sg.fromArray(values(seed, sizeOf(xs)), xs, o));
    const w = keep(sg.fromArray(values(seed + 1, sizeOf(ws), -0.1, 0.1), ws, o));
    f = () => sg.convTranspose2d(x, w, { stride: 2, padding: 0, outputPadding: 1 });
    grads = [x, w];
  } else if (spec.op === 'upsampleNearest2d') {
    const xs = SHAPES.upsampleNearest2d.x(batch);
    const x = keep(sg.fromArray(values(seed, sizeOf(xs)), xs, o));
    f = () => sg.upsampleNearest2d(x, 2);
    grads = [x];
  } else {
    const xs = SHAPES.batchNorm2d.x(batch);
    const x = keep(sg.fromArray(values(seed, sizeOf(xs)), xs, o));
    const gamma = keep(sg.ones([xs[1]], o)), beta = keep(sg.zeros([xs[1]], o));
    const rm = keep(sg.zeros([xs[1]], o)), rv = keep(sg.ones([xs[1]], o));
    f = () => sg.batchNorm2d(x, gamma, beta, rm, rv, { training: true, momentum: 0.1, eps: 1e-5 });
    grads = [x, gamma, beta];
  }
  for (const pass of spec.passes) {
    if (pass === 'forward') {
      out.set(pass, await timeIt(async () => {
        sg.noGrad(() => sg.scope(() => {
          f();
        }));
        await done();
      }, 1, reps));
    } else {
      const y0 = sg.noGrad(() => f());
      const dy = keep(sg.ones(y0.shape, o));
      y0.dispose();
      out.set(pass, await timeIt(async () => {
        for (const t of grads) t.requiresGrad = true;
        sg.scope(() => f().backward(dy));
        await done();
        sg.zeroGrad(grads);
      }, 1, reps));
    }
  }
  for (const t of tensors) t.dispose();
  return out;
}

// ------------------------------------------------------------------ both, as rows of the op bench

export interface ExtraMeasurement {
  op: ExtraOpName;
  name: string;
  pass: ExtraPass;
  impl: string;
  ms: number | null;
  basis?: PhaseTiming['basis'];
  error?: string;
}

export interface ExtraOptions {
  reps: number;
  tfjsReps: number;
  capSeconds: number;
  batch: number;
  seed: number;
  /** Progress lines (stderr). */
  log?: (s: string) => void;
}

export async function benchExtraOps(backend: 'cpu' | 'webgpu', peers: TfjsBackendName[], o: ExtraOptions): Promise<ExtraMeasurement[]> {
  const be = sg.getBackend(backend);
  const results: ExtraMeasurement[] = [];
  const paramShapes = buildAutoencoder('esann', { skips: true, seed: o.seed, backend: 'cpu' }).parameters().map((p) => {
    const s = [...p.shape];
    return s.length === 4 ? [s[2], s[3], s[1], s[0]] : s;
  });
  for (const spec of extraOps(o.batch)) {
    o.log?.(`\n[${backend}] ${spec.name}\n  skipgrad ${backend} ...`);
    const mine = await benchSkipgradExtra(be, spec, o.batch, o.reps, o.seed);
    for (const [pass, ms] of mine) results.push({ op: spec.op, name: spec.name, pass, impl: `skipgrad-${backend}`, ms, basis: 'median' });
    for (const peer of peers) {
      o.log?.(`\n  tfjs ${peer} (cap ${o.capSeconds} s) ...`);
      const r = await runTfjsWorker({
        kind: 'op', backend: peer, op: spec.op, passes: spec.passes, batch: o.batch, warmup: 1, reps: o.tfjsReps, seed: o.seed,
        ...(spec.op === 'adamw' ? { paramShapes } : {}),
      }, o.capSeconds, (l) => o.log?.(l));
      for (const pass of spec.passes) {
        const p = r.phases.get(pass);
        results.push({
          op: spec.op, name: spec.name, pass, impl: `tfjs-${peer}`, ms: p?.ms ?? null, basis: p?.basis ?? 'failed',
          ...(r.setupError ? { error: r.setupError } : p?.error ? { error: p.error } : !p ? { error: 'not reached before the cap' } : {}),
        });
      }
    }
    o.log?.('\n');
  }
  return results;
}
