/**
 * The audit trace: one entry per op call that went through the dispatch point, forward and backward.
 * Export as Chrome Trace Event JSON (open in https://ui.perfetto.dev or chrome://tracing) or print as a table.
 */
import type { Backend, ValueStats } from '../backend.js';
import type { DType } from '../dtype.js';
import type { Phase } from '../mode.js';
import { refusePromise } from '../mode.js';
import { expectOptions } from '../ops/util.js';
import { drainPool, formatRatio, formatShadow, type ShadowResult } from './shadow.js';

export interface TraceEntry {
  /** Position in the trace, from 0. */
  index: number;
  op: string;
  phase: Phase;
  inputs: number[][];
  outputs: number[][];
  dtype: DType;
  backend: string;
  /** Start, in milliseconds since the trace started. */
  startMs: number;
  /** Wall time of the kernel call in milliseconds (host time; GPU backends may add device time). */
  wallMs: number;
  flops: number;
  attrs?: Record<string, unknown>;
  /** The inputs (by index) the op overwrote in place (Adam's parameter and moments, batch norm's running statistics). */
  written?: number[];
  /** Which code computed it, where the backend chose (KernelNote, backend.ts): e.g. 'direct, sliding 5-wide rows, 2 threads'. */
  kernel?: string;
  /**
   * Per output, then per input the op wrote in place (Adam's parameter and moments), when the trace was started
   * with { stats: true } (filled in later on GPU backends: await trace.settle()).
   */
  stats?: ValueStats[];
  /** Device time in ms from timestamp queries (GPU backends that have them; filled in later: await trace.settle()). */
  gpuMs?: number;
  /**
   * Per output, then per input the op wrote in place, its difference from the same kernel run on the CPU in float64
   * from the same input values, when the trace was started with { shadow: true }; see audit/shadow.ts. On the CPU it
   * is filled in at the op, on webgpu once the readbacks are in (await trace.settle()). Absent for views, which run
   * no kernel, and where the reference failed (Trace.shadowFailures).
   */
  shadow?: ShadowResult[];
}

/** One result of one op call against the float64 reference (Trace.shadowRows). */
export interface ShadowRow {
  /** The entry's index. */
  index: number;
  op: string;
  phase: Phase;
  /** 'output k [shape]', or 'input i [shape] (in place)'. */
  result: string;
  rounding: number;
  error: number;
  kernel: string;
}

export interface TraceOptions {
  /** Also record min / max / mean / NaN / Inf of every output (costs a pass over each output). */
  stats?: boolean;
  /**
   * Also run every op again on the CPU in float64 from the same input values and record how far each result is
   * from it (TraceEntry.shadow; audit/shadow.ts). Reads every input and result back: for audits, not training. On
   * webgpu those reads are readbacks like any other: a device error comes out of trace.settle().
   */
  shadow?: boolean;
}

export class Trace {
  readonly entries: TraceEntry[] = [];
  readonly t0 = performance.now();
  /** Device-side results (GPU time, value stats) still on their way. */
  readonly pending: Promise<unknown>[] = [];
  /** The backends those results come from: settle() makes them submit what they still hold. */
  readonly backends = new Set<Backend>();
  /** Shadow results (TraceEntry.shadow) still on their way (webgpu's readbacks; kept by runOp): shadowRows() waits for none. */
  shadowsPending = 0;
  /** Op calls the shadow could not compare (the reference or a readback failed; kept by runOp): shadowRows() throws the first, settle() too. */
  readonly shadowFailures: Array<{ index: number; op: string; error: unknown }> = [];
  readonly options: TraceOptions;
  constructor(options: TraceOptions | null = {}) {
    expectOptions('trace', options, { stats: true, shadow: true });
    this.options = options ?? {};
  }

  /**
   * Waits until every entry's device-side fields (gpuMs, GPU value stats) are filled in. It submits the work the
   * backends still hold (a GPU time is known only once its op ran), so it never waits on a submit nobody makes.
   */
  async settle(): Promise<void> {
    await Promise.all([...this.backends].map((b) => b.sync?.()));
    await Promise.all(this.pending.splice(0));
  }

  get totalFlops(): number {
    return this.entries.reduce((s, e) => s + e.flops, 0);
  }

  /** Chrome Trace Event format: complete events ('X'), forward ops on thread 1, backward on thread 2, optimizer updates on 3. */
  toChromeTrace(): { traceEvents: object[]; displayTimeUnit: string; otherData: object } {
    const traceEvents: object[] = [
      { name: 'process_name', ph: 'M', pid: 1, tid: 0, args: { name: 'skipgrad' } },
      { name: 'thread_name', ph: 'M', pid: 1, tid: 1, args: { name: 'forward' } },
      { name: 'thread_name', ph: 'M', pid: 1, tid: 2, args: { name: 'backward' } },
      { name: 'thread_name', ph: 'M', pid: 1, tid: 3, args: { name: 'update' } },
    ];
    for (const e of this.entries) {
      traceEvents.push({
        name: e.op,
        cat: e.phase,
        ph: 'X',
        pid: 1,
        tid: e.phase === 'forward' ? 1 : e.phase === 'backward' ? 2 : 3,
        ts: Math.round(e.startMs * 1000),
        dur: Math.max(1, Math.round(e.wallMs * 1000)),
        args: {
          ...(e.gpuMs !== undefined ? { gpuMs: e.gpuMs } : {}),
          index: e.index, inputs: e.inputs.map(fmt), outputs: e.outputs.map(fmt), dtype: e.dtype, backend: e.backend,
          flops: e.flops, ...(e.attrs ? { attrs: e.attrs } : {}), ...(e.kernel !== undefined ? { kernel: e.kernel } : {}),
          ...(e.stats ? { stats: e.stats } : {}), ...(e.shadow ? { shadow: e.shadow } : {}),
        },
      });
    }
    return { traceEvents, displayTimeUnit: 'ms', otherData: { generator: 'skipgrad', ops: this.entries.length, totalFlops: this.totalFlops } };
  }

  /** toChromeTrace() as JSON, with non-finite numbers (a NaN's statistics, an infinitely wrong shadow) as strings, not null. */
  toJSON(): string {
    return JSON.stringify(this.toChromeTrace(), nonFiniteAsString);
  }

  /** A fixed-width table, one row per op call. */
  table(): string {
    const rows = this.entries.map((e) => [
      String(e.index), e.op, e.phase, e.inputs.map(fmt).join(' '), e.outputs.map(fmt).join(' '), e.dtype, e.backend,
      e.wallMs.toFixed(3), e.gpuMs !== undefined ? e.gpuMs.toFixed(3) : '', gflops(e.flops), e.kernel ?? '',
      e.stats ? e.stats.map((s) => `${num(s.min)}..${num(s.max)} mean ${num(s.mean)}${s.nan || s.inf ? ` NaN ${s.nan} Inf ${s.inf}` : ''}`).join('; ') : '',
      e.shadow ? formatShadow(e.shadow) : '',
    ]);
    const head = ['#', 'op', 'phase', 'inputs', 'outputs', 'dtype', 'backend', 'host ms', 'gpu ms', 'GFLOP', 'kernel',
      this.options.stats ? 'values' : '', this.options.shadow ? 'vs float64 (error, rounding)' : ''];
    return formatTable(head, rows);
  }

  /**
   * Every result of every op call, worst first by its distance from the float64 reference in units of float32
   * rounding (a trace started with { shadow: true }, settled): where a step lets error in.
   */
  shadowRows(): ShadowRow[] {
    if (!this.options.shadow) throw new Error('shadow: this trace was not started with { shadow: true }');
    if (this.shadowsPending > 0) throw new Error(`shadow: ${this.shadowsPending} op calls' results are still being read back; await trace.settle() first`);
    if (this.shadowFailures.length > 0) {
      const f = this.shadowFailures[0];
      throw new Error(`shadow: #${f.index} ${f.op} was not compared with float64: ${f.error instanceof Error ? f.error.message : String(f.error)}`, { cause: f.error });
    }
    const rows: ShadowRow[] = [];
    for (const e of this.entries) {
      e.shadow?.forEach((r, k) => {
        const w = k - e.outputs.length;
        const result = w < 0 ? `output ${k} ${fmt(e.outputs[k])}` : `input ${e.written![w]} ${fmt(e.inputs[e.written![w]])} (in place)`;
        rows.push({ index: e.index, op: e.op, phase: e.phase, result, rounding: r.rounding, error: r.error, kernel: e.kernel ?? '' });
      });
    }
    // NaN first: a result that is not a number against a reference that is.
    return rows.sort((a, b) => (Number.isNaN(b.rounding) ? 1 : Number.isNaN(a.rounding) ? -1 : b.rounding - a.rounding));
  }

  /** The first `count` of shadowRows() as a table. */
  shadowTable(count = 10): string {
    return formatTable(['#', 'op', 'phase', 'result', 'rounding', 'error', 'kernel'], this.shadowRows().slice(0, count).map((r) => [
      String(r.index), r.op, r.phase, r.result, formatRatio(r.rounding), r.error.toExponential(1), r.kernel,
    ]));
  }
}

/** A JSON.stringify replacer that writes NaN and the infinities as strings ('NaN', 'Infinity'), where JSON would write null. */
export function nonFiniteAsString(_key: string, v: unknown): unknown {
  return typeof v === 'number' && !Number.isFinite(v) ? String(v) : v;
}

function fmt(shape: number[]): string {
  return `[${shape.join(',')}]`;
}

function gflops(f: number): string {
  return f === 0 ? '0' : (f / 1e9).toPrecision(3);
}

function num(v: number): string {
  return Number.isFinite(v) ? v.toPrecision(4) : String(v);
}

export function formatTable(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const line = (r: string[]): string => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** Every trace recording now (traced() calls may nest, and a startTrace() trace may be running around them). */
const recording: Trace[] = [];
/** The trace of startTrace(), which stopTrace() ends. */
let started: Trace | null = null;

function remove(t: Trace): void {
  const i = recording.indexOf(t);
  if (i >= 0) recording.splice(i, 1);
  if (t.options.shadow) drainPool(); // the CPU's comparisons are done: their storages go now, not at the next task
}

/** Starts recording every op call into a new Trace (replacing the one an earlier startTrace() started, if any). */
export function startTrace(options: TraceOptions = {}): Trace {
  if (started) remove(started);
  started = new Trace(options);
  recording.push(started);
  return started;
}

/** Stops the trace startTrace() started and returns it (traces of enclosing traced() calls go on). */
export function stopTrace(): Trace {
  if (!started) throw new Error('stopTrace: no trace is active (call startTrace first)');
  const t = started;
  remove(t);
  started = null;
  return t;
}

/** The traces that record the next op call: every one started and not yet stopped, outermost first. */
export function activeTraces(): readonly Trace[] {
  return recording;
}

/**
 * Runs fn with a new trace recording (as well as any enclosing one) and returns both. fn must be synchronous.
 * If fn throws, the error carries the trace up to that point as `error.trace`.
 */
export function traced<T>(fn: () => T, options: TraceOptions = {}): { result: T; trace: Trace } {
  const trace = new Trace(options);
  recording.push(trace);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    if (e !== null && typeof e === 'object') Object.assign(e, { trace });
    throw e;
  } finally {
    remove(trace);
  }
  return { result: refusePromise('traced', result), trace };
}
