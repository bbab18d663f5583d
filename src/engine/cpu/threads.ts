/**
 * A small pool of worker threads that lets the synchronous CPU kernels use every core.
 *
 * The kernel API is synchronous (a kernel returns when its output is written), so the pool
 * works like a fork/join barrier rather than a job queue:
 *
 *   1. The caller splits its work into parts (conv.ts decides how: whole images, row ranges...).
 *   2. runParallel() posts one part to each worker with postMessage. The arrays in the message
 *      are backed by SharedArrayBuffer, so the worker sees the very same memory (nothing is copied).
 *   3. The calling thread does its own part meanwhile.
 *   4. It then blocks with Atomics.wait on a shared Int32Array counter, which each worker bumps
 *      (Atomics.add + Atomics.notify) when its part is done. A worker that throws reports the
 *      error on a private MessagePort first; the caller reads it synchronously
 *      (receiveMessageOnPort) and rethrows it, so a worker error is an ordinary thrown Error.
 *
 * Safety nets: the wait is sliced with a timeout and gives up (tearing the pool down and throwing)
 * when the workers stay silent far longer than the caller's own share took; 'error' / 'exit'
 * events of a worker that died between calls are remembered and thrown at the next call.
 *
 * The pool is created lazily, on the first call that is worth parallelising; its workers are
 * unref()'d so they never keep the process alive. Size: env SKIPGRAD_THREADS if set, else
 * os.availableParallelism(), at least 1 (1 = never use workers). The calling thread counts as
 * one of the threads, so the pool holds size - 1 workers. Where the host has no worker threads (a
 * browser: host.browser.ts), the size is 1.
 *
 * The worker script is worker.ts next to this file: worker.js when compiled, and worker.ts
 * loaded through tsx when this module runs from TypeScript sources (vitest, tsx); see
 * workerScript() at the end for how, and why not simply with `--import tsx`.
 */
import type { MessagePort, Worker } from 'node:worker_threads';
import type { FloatArray } from '../dtype.js';
import { host } from '../host.js';

/** One part of a kernel for a worker: the name of a function in conv.ts's workerKernels table and its arguments. */
export interface WorkerTask {
  kernel: string;
  args: unknown[];
}

/** What a worker receives at startup (workerData). */
export interface WorkerInit {
  skipgradKernelWorker: true;
  /** Index of this worker in the pool (0-based). */
  index: number;
  /** The pool's control array, see CTRL_* below. */
  ctrl: Int32Array;
  /** The worker's end of its private result channel. */
  port: MessagePort;
}

/** Reply a worker sends on its port at startup and when a task fails. */
export type WorkerReply = { type: 'ready' } | { type: 'error'; message: string; stack?: string };

// Layout of the shared control array (Int32Array on a SharedArrayBuffer).
/** Number of workers that finished the current job. */
export const CTRL_DONE = 0;
/** Number of workers that finished starting up (loaded the kernels) or failed to. */
export const CTRL_STARTED = 1;
const CTRL_LENGTH = 2;

/**
 * Minimum work (floating-point operations) per thread for a kernel to use one more thread: a
 * kernel of F flops uses at most floor(F / this) threads. Handing a part to a worker and joining
 * it costs ~20-30 us; measured on the 2-core machine with square float32 matmuls
 * (bench/gemm-micro.ts threshold), two threads lose below ~0.2 MFLOP of total work, win 1.6x at
 * 0.5 MFLOP and 1.5-1.7x at 1-3 MFLOP, and ~2x from 4 MFLOP on. 1 MFLOP per thread keeps a
 * margin for busy machines, where a worker that is descheduled delays the join.
 */
export const DEFAULT_PARALLEL_MIN_FLOPS = 1e6;

/** How long the first parallel call waits for the workers to start (loading tsx can take a while). */
const STARTUP_TIMEOUT_MS = 30_000;

interface Slot {
  worker: Worker;
  /** Our end of the worker's result channel (read synchronously with receiveMessageOnPort). */
  port: MessagePort;
}

interface Pool {
  slots: Slot[];
  ctrl: Int32Array;
  /** Set by the 'error' / 'exit' events of a worker that died; thrown at the next call. */
  failure: Error | null;
  /** True while we are tearing the pool down on purpose (so 'exit' is not a failure). */
  closing: boolean;
}

/** At most this many threads per core: more only costs memory (each worker is a V8 isolate) and start-up time. */
const MAX_THREADS_PER_CORE = 4;
let threadEnvError: Error | null = null;
let pool: Pool | null = null;
let threadCount = initialThreadCount();
let parallelMinFlops = DEFAULT_PARALLEL_MIN_FLOPS;
let parallelRuns = 0;

/** True inside one of our own workers: kernels there must never fan out again. */
const insideKernelWorker = (host.threads?.workerData as Partial<WorkerInit> | null | undefined)?.skipgradKernelWorker === true;

/**
 * The thread count from SKIPGRAD_THREADS, else every core. A value that is not a whole number from 1 to
 * MAX_THREADS_PER_CORE per core is kept as an error, thrown by the first kernel that asks (an error thrown while
 * this module loads would reach a command line as a stack trace, not as a message).
 */
function initialThreadCount(): number {
  if (!host.threads) return 1;
  const env = host.env('SKIPGRAD_THREADS');
  if (env !== undefined && env.trim() !== '') {
    const n = Number(env);
    const max = MAX_THREADS_PER_CORE * Math.max(1, host.parallelism);
    if (!/^\s*\d+\s*$/.test(env) || n < 1 || n > max) {
      threadEnvError = new Error(`SKIPGRAD_THREADS='${env}' is not a whole number from 1 to ${max} (${MAX_THREADS_PER_CORE} per core on this machine's ${host.parallelism}); unset it to use every core`);
      return 1;
    }
    return n;
  }
  return Math.max(1, host.parallelism);
}

/** Threads a kernel may use (the calling thread included). */
export function getThreadCount(): number {
  if (threadEnvError) throw threadEnvError;
  return insideKernelWorker ? 1 : threadCount;
}

/** Change the number of threads (>= 1). The pool is rebuilt lazily at the next parallel call. */
export function setThreadCount(n: number): void {
  threadEnvError = null; // an explicit count replaces a bad SKIPGRAD_THREADS
  const next = host.threads ? Math.max(1, Math.floor(n)) : 1;
  if (next !== threadCount) {
    shutdownThreads();
    threadCount = next;
  }
}

/** Minimum flops per thread for a kernel to go parallel (tests set 0 to force the threaded path on small inputs). */
export function getParallelMinFlops(): number {
  return parallelMinFlops;
}

export function setParallelMinFlops(flops: number): void {
  parallelMinFlops = flops;
}

/** How many kernel calls have run on more than one thread so far (tests check the threaded path was taken). */
export function parallelRunCount(): number {
  return parallelRuns;
}

/** True when the array lives in a SharedArrayBuffer, i.e. workers can write it in place. */
export function isShared(a: FloatArray): boolean {
  // (A tag check rather than instanceof, which fails for buffers made in another realm, e.g. a vm context.)
  return Object.prototype.toString.call(a.buffer) === '[object SharedArrayBuffer]';
}

/** Largest non-shared input (bytes of its buffer) that is copied to the workers instead of forcing a serial run. */
export const COPY_INPUT_MAX_BYTES = 256 * 1024;

/**
 * How many threads a kernel should use: 1 (run on the calling thread) unless more than one thread
 * is configured, the work gives each thread at least getParallelMinFlops() flops, it splits into
 * at least two parts, every array the workers write is SharedArrayBuffer-backed, and every array
 * they only read is either shared or small. (A small non-shared input, such as a bias vector, is
 * simply copied into each worker's message; structured clone copies the whole underlying buffer,
 * hence the limit on its byteLength.) Returns at most maxParts.
 */
export function planThreads(
  readArrays: readonly (FloatArray | null)[], writtenArrays: readonly FloatArray[], flops: number, maxParts: number,
): number {
  const byWork = parallelMinFlops > 0 ? Math.floor(flops / parallelMinFlops) : Infinity;
  const threads = Math.min(getThreadCount(), maxParts, byWork);
  if (threads < 2) return 1;
  for (const a of writtenArrays) if (!isShared(a)) return 1;
  for (const a of readArrays) if (a !== null && !isShared(a) && a.buffer.byteLength > COPY_INPUT_MAX_BYTES) return 1;
  return threads;
}

/**
 * Run `tasks` on the workers (task i on worker i) and `local` on the calling thread, and return
 * when all are done. Throws if a worker fails (after all the others have finished, so no thread
 * still writes the outputs when the caller sees the error).
 */
export function runParallel(tasks: readonly WorkerTask[], local: () => void): void {
  if (tasks.length === 0) {
    local();
    return;
  }
  const p = ensurePool(tasks.length);
  parallelRuns++;
  Atomics.store(p.ctrl, CTRL_DONE, 0);
  for (let i = 0; i < tasks.length; i++) p.slots[i].worker.postMessage(tasks[i]);

  const t0 = performance.now();
  let localError: unknown = null;
  try {
    local();
  } catch (e) {
    localError = e;
  }
  const localMs = performance.now() - t0;

  // Join. Wait in slices so a worker that vanished cannot hang us forever: give up when the
  // workers take far longer than our own (equal-sized) share did.
  const limitMs = 60_000 + 50 * localMs;
  const start = performance.now();
  for (;;) {
    const done = Atomics.load(p.ctrl, CTRL_DONE);
    if (done >= tasks.length) break;
    if (p.failure !== null || performance.now() - start > limitMs) {
      const why = p.failure?.message ?? `no answer after ${Math.round(performance.now() - start)} ms`;
      shutdownThreads();
      throw new Error(`skipgrad: a kernel worker thread failed (${why}); set SKIPGRAD_THREADS=1 to run without workers`);
    }
    Atomics.wait(p.ctrl, CTRL_DONE, done, 1000);
  }

  // Collect errors the workers reported.
  let workerError: Error | null = null;
  for (let i = 0; i < tasks.length; i++) {
    const { receiveMessageOnPort } = host.threads!;
    for (let msg = receiveMessageOnPort(p.slots[i].port); msg !== undefined; msg = receiveMessageOnPort(p.slots[i].port)) {
      const reply = msg.message as WorkerReply;
      if (reply.type === 'error' && workerError === null) {
        workerError = new Error(`skipgrad: kernel ${tasks[i].kernel} failed in a worker thread: ${reply.message}`);
        if (reply.stack !== undefined) workerError.stack = `${workerError.message}\n--- worker stack ---\n${reply.stack}`;
      }
    }
  }
  if (localError !== null) throw localError;
  if (workerError !== null) throw workerError;
}

/** Terminate the workers (they are recreated on demand). Never needed for the process to exit. */
export function shutdownThreads(): void {
  const p = pool;
  if (p === null) return;
  pool = null;
  p.closing = true;
  for (const s of p.slots) {
    s.port.close();
    void s.worker.terminate();
  }
}

/**
 * Start the workers now instead of at the first parallel kernel call (which would block until they
 * are up). Optional; useful before timing something.
 */
export function warmUpThreads(): void {
  const workers = getThreadCount() - 1;
  if (workers > 0) ensurePool(workers);
}

/** The pool, created (and waited for) on first use. Throws if a worker died or cannot start. */
function ensurePool(workersNeeded: number): Pool {
  if (pool !== null && pool.failure !== null) {
    const why = pool.failure.message;
    shutdownThreads();
    throw new Error(`skipgrad: a kernel worker thread failed (${why}); set SKIPGRAD_THREADS=1 to run without workers`);
  }
  if (pool !== null && pool.slots.length >= workersNeeded) return pool;
  shutdownThreads();
  const size = Math.max(workersNeeded, getThreadCount() - 1);
  const p = startPool(size);
  pool = p;
  return p;
}

function startPool(size: number): Pool {
  if (!host.threads) throw new Error('skipgrad: this host has no worker threads');
  const { Worker, MessageChannel, receiveMessageOnPort } = host.threads;
  const ctrl = new Int32Array(new SharedArrayBuffer(CTRL_LENGTH * Int32Array.BYTES_PER_ELEMENT));
  const p: Pool = { slots: [], ctrl, failure: null, closing: false };
  const { url, execArgv } = workerScript();
  for (let index = 0; index < size; index++) {
    const channel = new MessageChannel();
    const init: WorkerInit = { skipgradKernelWorker: true, index, ctrl, port: channel.port2 };
    const worker = new Worker(url, { workerData: init, transferList: [channel.port2], execArgv });
    worker.unref();
    channel.port1.unref();
    worker.on('error', (e: Error) => {
      if (!p.closing) p.failure ??= e;
    });
    worker.on('exit', (code: number) => {
      if (!p.closing) p.failure ??= new Error(`worker exited with code ${code}`);
    });
    p.slots.push({ worker, port: channel.port1 });
  }

  // Wait (synchronously) until every worker has loaded the kernels or reported that it could not.
  const start = performance.now();
  for (;;) {
    const started = Atomics.load(ctrl, CTRL_STARTED);
    if (started >= size) break;
    if (performance.now() - start > STARTUP_TIMEOUT_MS) {
      pool = p;
      shutdownThreads();
      throw new Error(`skipgrad: kernel worker threads did not start within ${STARTUP_TIMEOUT_MS / 1000} s; set SKIPGRAD_THREADS=1 to run without workers`);
    }
    Atomics.wait(ctrl, CTRL_STARTED, started, 200);
  }
  for (const s of p.slots) {
    const msg = receiveMessageOnPort(s.port);
    const reply = msg?.message as WorkerReply | undefined;
    if (reply?.type !== 'ready') {
      pool = p;
      shutdownThreads();
      const why = reply?.type === 'error' ? reply.message : 'no ready message';
      throw new Error(`skipgrad: a kernel worker thread failed to start (${why}); set SKIPGRAD_THREADS=1 to run without workers`);
    }
  }
  return p;
}

/**
 * The worker's entry point: a tiny inline ES module (data: URL) that imports worker.js, or, when
 * this module runs from TypeScript sources (vitest, tsx), registers tsx's loader and imports
 * worker.ts. Two reasons for the indirection:
 *  - Node cannot load .ts by itself, and on Node 20 a loader given in the worker's execArgv
 *    (`--import tsx`) is ignored (nodejs/node#47747); registering it from inside the worker
 *    with tsx/esm/api's register() does work.
 *  - Any failure to load the worker (missing file, syntax error, tsx not installed) is caught
 *    and reported through the startup protocol, so the first parallel call throws at once
 *    instead of waiting for a worker that died before it could say anything.
 */
function workerScript(): { url: URL; execArgv: string[] | undefined } {
  const fromSources = import.meta.url.endsWith('.ts');
  const entry = new URL(fromSources ? './worker.ts' : './worker.js', import.meta.url).href;
  const bootstrap = `
import { createRequire } from 'node:module';
import { workerData } from 'node:worker_threads';
try {
  ${fromSources ? `createRequire(${JSON.stringify(import.meta.url)})('tsx/esm/api').register();` : ''}
  await import(${JSON.stringify(entry)});
} catch (e) {
  const why = String((e && e.message) || e).replace(/data:text\\/javascript,\\S*/, 'the worker bootstrap');
  workerData.port.postMessage({ type: 'error', message: 'cannot load ' + ${JSON.stringify(entry)} + ': ' + why });
  Atomics.add(workerData.ctrl, ${CTRL_STARTED}, 1);
  Atomics.notify(workerData.ctrl, ${CTRL_STARTED});
}
`;
  return {
    url: new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`),
    // From sources, do not pass on the parent's tsx flags, which a Node 20 worker cannot use anyway.
    execArgv: fromSources ? [] : undefined,
  };
}
