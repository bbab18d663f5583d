/**
 * Parent side of the tfjs worker (bench/model-worker.ts): starts it on a job, collects its per-phase timings,
 * and stops it at a cap. A phase stopped by the cap reports what it has: the median of the timed repetitions
 * that finished (partial), else the warm-up run's time, else a lower bound (the time the unfinished run had
 * taken when it was stopped).
 */
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { WorkerJob, WorkerMessage } from './model-worker.js';

export function median(xs: readonly number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** One phase's outcome (a pass, or the model's forward / step). */
export interface PhaseTiming {
  /** The median of the timed repetitions; the warm-up's time when only that finished; the lower bound when capped before any. */
  ms: number | null;
  /** How `ms` was obtained. */
  basis: 'median' | 'partial-median' | 'warm-up' | 'lower-bound' | 'failed';
  times: number[];
  warmupMs: number[];
  /** Loss of each step in order (warm-up first), where the phase reports one. */
  losses: number[];
  error?: string;
}

export interface WorkerOutcome {
  phases: Map<string, PhaseTiming>;
  peakBytes?: number;
  checksum?: number;
  info?: Extract<WorkerMessage, { event: 'info' }>;
  setupError?: string;
  /** The cap stopped the worker. */
  capped: boolean;
}

function blank(): PhaseTiming {
  return { ms: null, basis: 'failed', times: [], warmupMs: [], losses: [] };
}

/**
 * A worker thread running `file` (a path next to this module, '.ts' name). Compiled (dist/), the '.js' file;
 * under tsx, a bootstrap that registers tsx's loader in the thread first (Node 20 does not apply
 * execArgv ['--import', 'tsx'] to worker threads: the '.ts' file fails with "Unknown file extension").
 */
export function startWorker(name: string, workerData: unknown): Worker {
  const here = path.dirname(fileURLToPath(import.meta.url));
  if (!import.meta.url.endsWith('.ts')) return new Worker(path.join(here, name.replace(/\.ts$/, '.js')), { workerData });
  const url = pathToFileURL(path.join(here, name)).href;
  return new Worker(`require('tsx/esm/api').register(); import(${JSON.stringify(url)});`, { eval: true, workerData });
}

export function runTfjsWorker(job: WorkerJob, capSeconds: number, log?: (line: string) => void): Promise<WorkerOutcome> {
  const worker = startWorker('model-worker.ts', job);
  const out: WorkerOutcome = { phases: new Map(), capped: false };
  const phase = (p: string): PhaseTiming => {
    if (!out.phases.has(p)) out.phases.set(p, blank());
    return out.phases.get(p)!;
  };
  let inFlight: { phase: string; rep: number; start: number } | null = null;

  return new Promise((resolve) => {
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      void worker.terminate();
      for (const [name, p] of out.phases) {
        if (p.error !== undefined && p.times.length === 0 && p.warmupMs.length === 0) {
          p.basis = 'failed';
          p.ms = null;
        } else if (p.times.length > 0) {
          p.ms = median(p.times);
          p.basis = inFlight?.phase === name && out.capped ? 'partial-median' : 'median';
        } else if (inFlight?.phase === name && out.capped) {
          // Stopped in the middle of this phase with no timed repetition done.
          p.ms = p.warmupMs.length > 0 ? p.warmupMs[p.warmupMs.length - 1] : performance.now() - inFlight.start;
          p.basis = p.warmupMs.length > 0 ? 'warm-up' : 'lower-bound';
        } else if (p.warmupMs.length > 0) {
          p.ms = p.warmupMs[p.warmupMs.length - 1];
          p.basis = 'warm-up';
        }
      }
      resolve(out);
    };
    const timer = setTimeout(() => {
      out.capped = true;
      if (inFlight) phase(inFlight.phase); // make sure a phase stopped in its first run is reported
      log?.(` capped at ${capSeconds} s`);
      finish();
    }, capSeconds * 1000);
    worker.on('message', (m: WorkerMessage) => {
      switch (m.event) {
        case 'info':
          out.info = m;
          break;
        case 'begin':
          inFlight = { phase: m.phase, rep: m.rep, start: performance.now() };
          phase(m.phase);
          break;
        case 'end': {
          inFlight = null;
          const p = phase(m.phase);
          (m.rep < 0 ? p.warmupMs : p.times).push(m.ms);
          if (m.loss !== undefined) p.losses.push(m.loss);
          log?.(` ${m.phase}${m.rep < 0 ? ' (warm-up)' : ''} ${(m.ms / 1000).toFixed(2)} s`);
          break;
        }
        case 'peak':
          out.peakBytes = m.bytes;
          break;
        case 'checksum':
          out.checksum = m.value;
          break;
        case 'error':
          inFlight = null;
          if (m.phase === 'setup') out.setupError = m.message;
          else phase(m.phase).error = m.message;
          log?.(` ${m.phase}: ${m.message.split('\n')[0].slice(0, 100)}`);
          break;
        case 'done':
          finish();
          break;
      }
    });
    worker.on('error', (e) => {
      out.setupError ??= e.message;
      finish();
    });
    worker.on('exit', () => finish());
  });
}
