/**
 * Entry point of a kernel worker thread (see threads.ts for the protocol).
 *
 * At startup it loads the kernels, says 'ready' on its private port and bumps the shared
 * "started" counter. Then, for every task message { kernel, args }, it runs the named function
 * from conv.ts's workerKernels table on the shared arrays in args, reports an error on its port
 * if the kernel throws, and always bumps the shared "done" counter and wakes the waiting thread.
 *
 * The kernels are imported dynamically so that a failure to load them is reported to the main
 * thread at once (instead of the main thread waiting for a worker that died while starting).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CTRL_DONE, CTRL_STARTED, type WorkerInit, type WorkerReply, type WorkerTask } from './threads.js';

type KernelTable = Record<string, (...args: never[]) => void>;

const init = workerData as WorkerInit;
const { ctrl, port } = init;

function reply(r: WorkerReply): void {
  port.postMessage(r);
}

function describeError(e: unknown): WorkerReply {
  if (e instanceof Error) return { type: 'error', message: e.message, stack: e.stack };
  return { type: 'error', message: String(e) };
}

let kernels: KernelTable | null = null;
try {
  const mod = await import('./conv.js');
  kernels = mod.workerKernels as unknown as KernelTable;
} catch (e) {
  reply(describeError(e));
}

if (kernels !== null) {
  const table = kernels;
  parentPort?.on('message', (task: WorkerTask) => {
    try {
      const fn = table[task.kernel];
      if (fn === undefined) throw new Error(`unknown kernel '${task.kernel}'`);
      (fn as (...args: unknown[]) => void)(...task.args);
    } catch (e) {
      reply(describeError(e));
    } finally {
      Atomics.add(ctrl, CTRL_DONE, 1);
      Atomics.notify(ctrl, CTRL_DONE);
    }
  });
  reply({ type: 'ready' });
}

Atomics.add(ctrl, CTRL_STARTED, 1);
Atomics.notify(ctrl, CTRL_STARTED);
