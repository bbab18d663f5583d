/**
 * Parent side of the tfjs worker (bench/model-worker.ts, run as a child process): starts it on a job, collects its
 * per-phase timings, and stops it at a cap. Also the timing loops both sides share (timeIt, repeatPhase). A phase stopped by the cap reports what it has: the median of the timed repetitions
 * that finished (partial), else the warm-up run's time, else a lower bound (the time the unfinished run had
 * taken when it was stopped).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ChildProcess, fork } from 'node:child_process';
import type { WorkerJob, WorkerMessage } from './model-worker.js';
import { median } from './model-step.js';

/** The skipgrad side's timing: `warmup` untimed runs of fn, then the median wall time (ms) of `n` timed runs. */
export async function timeIt(fn: () => Promise<void>, warmup: number, n: number): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return median(times);
}

/**
 * The tfjs side's timing (in the child process): `warmup` then `reps` runs of fn for one phase, each between a
 * 'begin' and an 'end' message (with fn's loss, if it returns one), so the parent sees every finished run even
 * when it stops the child at the cap. An exception ends the phase with an 'error' message (and resolves false).
 */
export async function repeatPhase(post: (m: WorkerMessage) => void, phase: string, warmup: number, reps: number,
  fn: (rep: number) => Promise<number | void>): Promise<boolean> {
  try {
    for (let rep = -warmup; rep < reps; rep++) {
      post({ event: 'begin', phase, rep });
      const s = performance.now();
      const loss = await fn(rep);
      post({ event: 'end', phase, rep, ms: performance.now() - s, ...(loss !== undefined ? { loss } : {}) });
    }
    return true;
  } catch (e) {
    post({ event: 'error', phase, message: (e as Error).message });
    return false;
  }
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

export type Basis = PhaseTiming['basis'];

/** A value marked with how it was measured: '>' before a lower bound (stopped at the cap in its first run),
 *  '*' after the time of the warm-up run alone (stopped at the cap before a timed repetition), '~' before the
 *  median of fewer timed runs than asked for (stopped at the cap after some). */
export function marked(v: string, basis: Basis): string {
  return basis === 'lower-bound' ? `>${v}` : basis === 'warm-up' ? `${v}*` : basis === 'partial-median' ? `~${v}` : v;
}

/** A time in ms or s, marked by its basis; 'n/a' when there is none. */
export function fmtTime(ms: number | null, basis: Basis, msDecimals = 0): string {
  if (ms === null) return 'n/a';
  return marked(ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(msDecimals)} ms`, basis);
}

/** A ratio (peer / skipgrad) as 'N.NNx', marked by the basis of the peer's measurement; '' when there is none. */
export function fmtRatio(r: number | null | undefined, basis: Basis = 'median', decimals = 2): string {
  if (r === null || r === undefined || !Number.isFinite(r)) return '';
  return marked(`${r.toFixed(decimals)}x`, basis);
}

export interface WorkerOutcome {
  phases: Map<string, PhaseTiming>;
  peakBytes?: number;
  checksum?: number;
  info?: Extract<WorkerMessage, { event: 'info' }>;
  setupError?: string;
  /** The cap stopped the process. */
  capped: boolean;
}

function blank(): PhaseTiming {
  return { ms: null, basis: 'failed', times: [], warmupMs: [], losses: [] };
}

/**
 * A child process running `name` (a '.ts' path next to this module; compiled, the '.js' file; under tsx, the
 * '.ts' file with tsx's loader). A process, not a worker thread: stopping a thread while Dawn (tfjs-webgpu) has
 * a buffer mapping in flight aborts the whole process ("GPUBuffer.cpp: Promise not resolved or rejected:
 * mapAsync()"); killing a child process cannot take the parent down. Messages use structured clone
 * ('advanced' serialization), so typed arrays travel as they are.
 */
export function startChild(name: string): ChildProcess {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const ts = import.meta.url.endsWith('.ts');
  return fork(path.join(here, ts ? name : name.replace(/\.ts$/, '.js')), [], {
    serialization: 'advanced', execArgv: ts ? ['--import', 'tsx'] : [], env: { ...process.env, SKIPGRAD_TFJS_CHILD: '1' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

export function runTfjsWorker(job: WorkerJob, capSeconds: number, log?: (line: string) => void): Promise<WorkerOutcome> {
  const child = startChild('model-worker.ts');
  child.send(job);
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
      child.kill('SIGKILL');
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
    child.on('message', (m: WorkerMessage) => {
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
    child.on('error', (e) => {
      out.setupError ??= e.message;
      finish();
    });
    child.on('exit', (code, signal) => {
      if (!finished && !out.capped) out.setupError ??= `the tfjs process ended early (${signal ?? `exit code ${code}`})`;
      finish();
    });
  });
}
