/**
 * The TensorFlow.js side of the model bench (bench/model.ts) and of the op bench (bench/ops.ts, bench/ops-extra.ts),
 * in a child process (started by bench/tfjs-run.ts) so the parent can stop a slow run by killing it.
 *
 *   kind 'model': the esann AESc/AE in tfjs layers (bench/model-tfjs.ts) with skipgrad's initial weights;
 *                 forward passes (training-mode BN, no tape), then training steps (forward, MSE, gradients,
 *                 AdamW). The first step is the warm-up and runs under tf.profile for the memory high-water.
 *   kind 'op':    one op (bench/ops-extra.ts) forward or forward+backward.
 *   kind 'conv':  one conv2d pass of the op bench (bench/ops.ts, shapes in bench/ops-shapes.ts).
 * Results are read back with await data(), never dataSync() (tfjs-webgpu's dataSync needs OffscreenCanvas,
 * which Node lacks).
 *
 * Messages to the parent: { event: 'begin', phase, rep } before each measured item (rep < 0: warm-up),
 * { event: 'end', phase, rep, ms, loss? } after it, { event: 'info', ... } once set up, { event: 'peak', bytes },
 * { event: 'error', phase, message } (a phase that cannot run, e.g. a kernel tfjs-wasm lacks), { event: 'done' }.
 */
import type { NamedArray, Tf } from './model-tfjs.js';
import { buildTfjsAutoencoder, createTfjsTrainer, loadSkipgradWeights, nhwcTensor, waitFor } from './model-tfjs.js';
import type { ExtraOpJob } from './ops-extra.js';
import { hwioWeight, nhwcInput, type TfjsJob } from './ops-shapes.js';
import { repeatPhase } from './tfjs-run.js';
import { tfjsStep } from './model-step.js';
import { runTfjsExtraOp } from './ops-extra.js';
import { gpuInstance } from '../src/engine/webgpu/device.js';

export type TfjsBackendName = 'cpu' | 'wasm' | 'webgpu';

export interface TfjsModelJob {
  kind: 'model';
  backend: TfjsBackendName;
  skips: boolean;
  size: number;
  batch: number;
  baseChannels: number;
  warmup: number;
  reps: number;
  /** skipgrad's state dict (parameters and BN buffers) in skipgrad layout. */
  state: NamedArray[];
  /** NCHW input and target. */
  x: Float32Array;
  target: Float32Array;
  lr: number;
  weightDecay: number;
  /** Which measurements, in order (the parent runs each in its own process, so one cap does not starve the other). */
  phases: Array<'step' | 'forward'>;
}

/** One conv2d measurement of the op bench (bench/ops.ts). */
export type ConvJob = TfjsJob & { kind: 'conv' };

export type WorkerJob = TfjsModelJob | (ExtraOpJob & { kind: 'op'; backend: TfjsBackendName }) | ConvJob;

/** 'forward' and 'step' (model), a pass name (op), or 'setup'. */
export type Phase = string;

export type WorkerMessage =
  | { event: 'begin'; phase: Phase; rep: number }
  | { event: 'end'; phase: Phase; rep: number; ms: number; loss?: number }
  | { event: 'info'; backend: string; wasmThreads?: boolean; setupMs: number }
  | { event: 'peak'; bytes: number }
  | { event: 'checksum'; value: number }
  | { event: 'error'; phase: Phase; message: string }
  | { event: 'done' };

/** Dawn's instance, kept reachable for the life of the process (else Dawn is destroyed under running work). */
const keep: { gpu: unknown } = { gpu: null };

function post(m: WorkerMessage): void {
  if (m.event === 'done') process.send!(m, undefined, {}, () => process.exit(0));
  else process.send!(m);
}

export async function loadTfjs(backend: TfjsBackendName): Promise<Tf> {
  if (backend === 'webgpu') {
    // tfjs-backend-webgpu looks for navigator.gpu when it is imported: install Dawn's first, made as skipgrad makes
    // it (the same adapter, the same SKIPGRAD_DAWN_OPTIONS).
    keep.gpu = await gpuInstance();
    if (!keep.gpu) throw new Error('no WebGPU (Dawn) instance for tfjs-webgpu');
    Object.defineProperty(globalThis, 'navigator', { value: { gpu: keep.gpu }, configurable: true, writable: true });
  }
  const tf = await import('@tensorflow/tfjs');
  if (backend === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
  if (backend === 'webgpu') await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend(backend))) throw new Error(`tfjs backend '${backend}' did not initialise`);
  await tf.ready();
  return tf;
}

async function runModel(tf: Tf, j: TfjsModelJob): Promise<void> {
  const t0 = performance.now();
  const ae = buildTfjsAutoencoder(tf, { skips: j.skips, inputSize: j.size, baseChannels: j.baseChannels });
  loadSkipgradWeights(tf, ae, j.state);
  const trainer = createTfjsTrainer(tf, ae, { lr: j.lr, weightDecay: j.weightDecay });
  const shape = [j.batch, 1, j.size, j.size];
  const x = nhwcTensor(tf, j.x, shape);
  const target = nhwcTensor(tf, j.target, shape);
  // A weight read after a step waits for the step's updates (device queues run in order). Reads are async:
  // tfjs-webgpu's dataSync needs OffscreenCanvas, which Node lacks.
  const lastWeight = ae.weights.get('out.bias')!;
  post({
    event: 'info', backend: tf.getBackend(), setupMs: performance.now() - t0,
    ...(j.backend === 'wasm' ? { wasmThreads: tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT') } : {}),
  });

  const forward = (): Promise<boolean> => repeatPhase(post, 'forward', j.warmup, j.reps, async () => {
    const y = tf.tidy(() => ae.model.apply(x, { training: true }) as ReturnType<Tf['tensor']>);
    await y.data();
    y.dispose();
  });
  const steps = (): Promise<boolean> => repeatPhase(post, 'step', j.warmup, j.reps, async (rep) => {
    let loss: number;
    if (rep === -j.warmup) {
      // The first step (from the initial weights, so its loss is comparable with skipgrad's: run 'step' first)
      // under tf.profile, for the memory high-water.
      const info = await tf.profile(() => trainer.step(x, target));
      const l = info.result as ReturnType<Tf['scalar']>;
      loss = (await l.data())[0];
      l.dispose();
      await lastWeight.read().data();
      post({ event: 'peak', bytes: info.peakBytes });
    } else {
      loss = await tfjsStep(trainer, x, target, lastWeight);
    }
    return loss;
  });
  for (const p of j.phases) await (p === 'step' ? steps() : forward());
  post({ event: 'done' });
}

/** conv2d forward / gradInput / gradFull at one op-bench shape (NHWC, HWIO), with async reads. */
async function runConv(tf: Tf, j: ConvJob, setupMs: number): Promise<void> {
  post({ event: 'info', backend: tf.getBackend(), setupMs });
  const s = j.shape;
  const x = tf.tensor4d(nhwcInput(s, j.seed), [s.n, s.h, s.w, s.c]);
  const w = tf.tensor4d(hwioWeight(s, j.seed), [s.k, s.k, s.c, s.o]);
  const pad = s.pad === 'same' ? 'same' : 'valid';
  const conv = (a: ReturnType<Tf['tensor']>, b: ReturnType<Tf['tensor']>): ReturnType<Tf['tensor']> =>
    tf.conv2d(a as ReturnType<Tf['tensor4d']>, b as ReturnType<Tf['tensor4d']>, s.stride, pad);
  // dy made once, before the timed runs (as skipgrad's side does): tf.grad runs the forward itself, so a pass is one
  // forward and the gradients on both sides.
  const dy = j.pass === 'forward' ? null : tf.tidy(() => tf.onesLike(conv(x, w)));
  const compute = (): Array<ReturnType<Tf['tensor']>> => {
    if (j.pass === 'forward') return [conv(x, w)];
    if (j.pass === 'gradInput') return [tf.grad((a) => conv(a, w))(x, dy!)];
    return tf.grads((a, b) => conv(a, b))([x, w], dy!);
  };
  const ok = await repeatPhase(post, j.pass, j.warmup, j.reps, async () => {
    const outs = tf.tidy(compute);
    await waitFor(tf, outs);
    tf.dispose(outs);
  });
  dy?.dispose();
  if (ok && j.pass === 'forward') {
    try {
      const sum = tf.tidy(() => tf.sum(conv(x, w)));
      post({ event: 'checksum', value: (await sum.data())[0] });
      sum.dispose();
    } catch (e) {
      post({ event: 'error', phase: j.pass, message: (e as Error).message });
    }
  }
  post({ event: 'done' });
}

async function main(job: WorkerJob): Promise<void> {
  const setup = performance.now();
  let tf: Tf;
  try {
    tf = await loadTfjs(job.backend);
  } catch (e) {
    post({ event: 'error', phase: 'setup', message: (e as Error).message });
    post({ event: 'done' });
    return;
  }
  if (job.kind === 'model') await runModel(tf, job);
  else if (job.kind === 'conv') await runConv(tf, job, performance.now() - setup);
  else await runTfjsExtraOp(tf, job, post, performance.now() - setup);
}

// Run as a child process (bench/tfjs-run.ts): the job arrives as the first message.
if (process.send && process.env.SKIPGRAD_TFJS_CHILD === '1') {
  process.once('message', (job: WorkerJob) => {
    main(job).catch((e: unknown) => {
      post({ event: 'error', phase: 'setup', message: (e as Error).stack ?? String(e) });
      post({ event: 'done' });
    });
  });
}
