/**
 * Runs one TensorFlow.js conv2d measurement in a worker thread, so the bench can cap it with
 * worker.terminate() (tfjs-cpu's conv gradient takes minutes on these machines).
 * workerData: { backend, shape, pass, warmup, reps, seed }; posts { times } or { error }.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { BenchShape, TfjsJob } from './ops-shapes.js';
import { nhwcInput, hwioWeight } from './ops-shapes.js';

const job = workerData as TfjsJob;
// dataSync() waits for the device on webgpu too, so each timed run includes the GPU work.

/** Dawn's instance, kept reachable for the life of the thread (else Dawn is destroyed under running work). */
const keep: { gpu: unknown } = { gpu: null };

async function main(): Promise<void> {
  if (job.backend === 'webgpu') {
    // tfjs-backend-webgpu looks for navigator.gpu when it is imported: install Dawn's first.
    const webgpu = (await import('webgpu')) as unknown as { create: (o: string[]) => unknown; globals: object };
    Object.assign(globalThis, webgpu.globals);
    keep.gpu = webgpu.create([]);
    Object.defineProperty(globalThis, 'navigator', { value: { gpu: keep.gpu }, configurable: true, writable: true });
  }
  const tf = await import('@tensorflow/tfjs');
  if (job.backend === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
  if (job.backend === 'webgpu') await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend(job.backend))) throw new Error(`tfjs backend '${job.backend}' did not initialise`);
  const s: BenchShape = job.shape;
  const x = tf.tensor4d(nhwcInput(s, job.seed), [s.n, s.h, s.w, s.c]);
  const w = tf.tensor4d(hwioWeight(s, job.seed), [s.k, s.k, s.c, s.o]);
  const pad = s.pad === 'same' ? 'same' : 'valid';
  const run = (): void => {
    tf.tidy(() => {
      if (job.pass === 'forward') {
        tf.conv2d(x, w, s.stride, pad).dataSync();
      } else if (job.pass === 'gradInput') {
        const y = tf.conv2d(x, w, s.stride, pad);
        tf.grad((a) => tf.conv2d(a as typeof x, w, s.stride, pad))(x, tf.onesLike(y)).dataSync();
      } else {
        const y = tf.conv2d(x, w, s.stride, pad);
        const [gx, gw] = tf.grads((a, b) => tf.conv2d(a as typeof x, b as typeof w, s.stride, pad))([x, w], tf.onesLike(y));
        gx.dataSync();
        gw.dataSync();
      }
    });
  };
  const times: number[] = [];
  for (let i = 0; i < job.warmup + job.reps; i++) {
    const t0 = performance.now();
    run();
    const dt = performance.now() - t0;
    if (i >= job.warmup) times.push(dt);
    parentPort!.postMessage({ progress: dt });
  }
  let checksum = 0;
  if (job.pass === 'forward') checksum = tf.tidy(() => tf.sum(tf.conv2d(x, w, s.stride, pad)).dataSync()[0]);
  parentPort!.postMessage({ times, checksum });
}

main().catch((e: unknown) => parentPort!.postMessage({ error: (e as Error).message }));
