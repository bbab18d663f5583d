/**
 * The shadow audit: each op that a trace started with { shadow: true } records is run again on the CPU in float64,
 * from the same input values, and each of its results (outputs, then inputs it wrote in place) is compared with that
 * reference. Where a whole step's error against float64 says only how far off the end result is, the shadow says
 * which op let the error in: each op is judged on its own inputs, so errors made upstream do not count against it.
 *
 * A raw relative error misleads where the result cancels (a sum of terms of both signs that nearly vanishes: a conv
 * bias's gradient in front of batch norm is zero but for rounding), so each result is also measured against the
 * op's float32 conditioning: how far the float64 result moves when each input value is moved by up to float32's unit
 * roundoff (times 1 + u 2^-24, u uniform in [-1, 1], one draw from a fixed seed: the most that rounding to float32
 * changes a value), or, where that is less, 2^-24 of the result's largest value (storing the result in float32 rounds
 * it up to that much). An op is then judged by `rounding`, its error in units of that: about 1 or below, the op is as
 * exact as float32 inputs allow; a kernel that accumulates in float32 lands at a few to a few tens (more for long
 * sums); a kernel that is wrong lands above, by as much as it is wrong (one 1e-4 off lands in the thousands).
 *
 * When it runs: on the CPU, at the op (the values are at hand). On webgpu, every input is read back before the kernel
 * and every result after it, in order with the GPU work, and the comparison waits for the reads: until
 * trace.settle(), all of a step's readbacks are held at once (GPU staging buffers about the size of every op's inputs
 * and outputs together). Those reads are readbacks like any other: a device error comes out of trace.settle() rather
 * than a later sync. The reference runs twice per op on the CPU in float64, on storages reused from op to op (see
 * the pool below). Costs, for the esann step on the CPU at 128x128: 24 s and 0.62 GB at peak, against 7 s and 0.33
 * GB without the shadow. For audits at development sizes, not for training runs.
 */
import type { Backend, KernelNote, Storage } from '../backend.js';
import type { FloatArray } from '../dtype.js';
import { Rng } from '../random.js';
import { cpuBackend } from '../registry.js';

export interface ShadowResult {
  /** max |value - reference| / max |reference| over its finite values (the absolute difference where that is 0). */
  error: number;
  /**
   * max |value - reference| / the larger of max |reference(inputs moved by float32's rounding) - reference| and 2^-24
   * of max |reference| (the result's own rounding), over the reference's finite values: the error in units of what
   * float32 alone decides (0 where the value is exact; Infinity where that is 0 yet the values differ, or where the
   * value is NaN or infinite and the reference is not). In float32's units on a float64 backend too.
   */
  rounding: number;
}

type Kernel = (backend: Backend, outs: Storage[], ins: Storage[]) => KernelNote | void;

/** float32's unit roundoff: rounding to float32 changes a value by at most this much of it. */
const F32_ROUNDING = 2 ** -24;

/**
 * Copies of the values of `storages` as they are now, in order with the work recorded so far: at once where the
 * backend reads synchronously (the CPU), else (webgpu) when the readbacks recorded now come in.
 */
export function snapshot(backend: Backend, storages: Storage[]): FloatArray[] | Promise<FloatArray[]> {
  if (backend.name === 'cpu') return storages.map((s) => backend.readSync(s));
  return Promise.all(storages.map((s) => backend.read(s)));
}

/**
 * The shadow of one op call, from the snapshots of its inputs before the kernel and of its results after it (see
 * compareWithReference): at once when both are at hand (a reference that fails throws here), else a promise.
 */
export function shadowOp(kernel: Kernel, before: FloatArray[] | Promise<FloatArray[]>, after: FloatArray[] | Promise<FloatArray[]>,
  outputSizes: number[], writes: readonly number[]): ShadowResult[] | Promise<ShadowResult[]> {
  if (before instanceof Promise || after instanceof Promise) {
    return Promise.all([before, after]).then(([b, a]) => compareWithReference(kernel, b, a, outputSizes, writes));
  }
  return compareWithReference(kernel, before, after, outputSizes, writes);
}

/**
 * Runs `kernel` on the CPU in float64 from `inputs` and returns its results: each output (of the sizes given), then
 * each input it wrote in place (indices `writes`), after the kernel.
 */
export function referenceRun(kernel: Kernel, inputs: ArrayLike<number>[], outputSizes: number[], writes: readonly number[]): Float64Array[] {
  const cpu = cpuBackend();
  const ins: Storage[] = [];
  const outs: Storage[] = [];
  try {
    for (const v of inputs) {
      const s = takeStorage(v.length);
      ins.push(s);
      cpu.write(s, v);
    }
    for (const n of outputSizes) outs.push(takeStorage(n));
    kernel(cpu, outs, ins);
    return [...outs, ...writes.map((i) => ins[i])].map((s) => cpu.readSync(s) as Float64Array);
  } finally {
    for (const s of [...ins, ...outs]) giveStorage(s);
  }
}

/**
 * The reference's float64 storages, by size, reused from op to op until the event loop next runs a task (then freed).
 * Not for speed: the CPU's worker threads hold on to every shared buffer they were handed until they collect garbage,
 * which they seldom do, so fresh storages per op piled up (a shadowed 128x128 step on the CPU peaked at 1.3 GB with
 * them, 0.62 GB with the pool, 0.33 GB without the shadow); reused, the workers see the same few.
 */
const pool = new Map<number, Storage[]>();
let drainScheduled = false;

function takeStorage(size: number): Storage {
  return pool.get(size)?.pop() ?? cpuBackend().alloc('float64', size);
}

function giveStorage(s: Storage): void {
  const list = pool.get(s.size) ?? [];
  list.push(s);
  pool.set(s.size, list);
  if (!drainScheduled) {
    drainScheduled = true;
    const timer: unknown = setTimeout(drainPool, 0);
    (timer as { unref?: () => void }).unref?.();
  }
}

/** Frees the pooled reference storages (at the next task of the event loop, when a shadow trace stops, or when called). */
export function drainPool(): void {
  drainScheduled = false;
  for (const list of pool.values()) for (const s of list) cpuBackend().free(s);
  pool.clear();
}

/** `values` with each element times 1 + u 2^-24, u uniform in [-1, 1) (zeros and signs kept). */
export function roundingMove(values: ArrayLike<number>, rng: Rng): Float64Array {
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i] * (1 + (2 * rng.next() - 1) * F32_ROUNDING);
  return out;
}

/** max |a - b| (Infinity if either side has a NaN where the other does not, or an infinity that differs). */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`shadow: ${a.length} values against a reference of ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i], y = b[i];
    if (x === y || (Number.isNaN(x) && Number.isNaN(y))) continue;
    const e = Math.abs(x - y);
    if (!(e <= d)) d = Number.isNaN(e) ? Infinity : e;
  }
  return d;
}

/** One result's ShadowResult, from its value, the reference and the reference on rounding-moved inputs. */
export function shadowResult(value: ArrayLike<number>, reference: Float64Array, moved: Float64Array): ShadowResult {
  const diff = maxDiff(value, reference);
  // Scale and move over the reference's finite values: an infinity (1/0) says nothing of the others' precision.
  let scale = 0, move = 0;
  for (let i = 0; i < reference.length; i++) {
    const r = reference[i];
    if (!Number.isFinite(r)) continue;
    scale = Math.max(scale, Math.abs(r));
    const m = Math.abs(moved[i] - r);
    if (Number.isFinite(m)) move = Math.max(move, m);
  }
  // What float32 alone decides: the inputs' rounding (the move) or the result's own (2^-24 of its largest value).
  const unit = Math.max(move, scale * F32_ROUNDING);
  return {
    error: diff === 0 ? 0 : scale > 0 ? diff / scale : diff,
    rounding: diff === 0 ? 0 : unit > 0 ? diff / unit : Infinity,
  };
}

/**
 * Compares an op's results with the float64 reference: `before` are its inputs' values before the kernel ran,
 * `after` its results' values (outputs, then the inputs in `writes`). The rounding move is drawn from `seed`, so
 * the same op on the same values gets the same ShadowResult.
 */
export function compareWithReference(kernel: Kernel, before: ArrayLike<number>[], after: ArrayLike<number>[], outputSizes: number[],
  writes: readonly number[], seed = 0): ShadowResult[] {
  const reference = referenceRun(kernel, before, outputSizes, writes);
  const rng = new Rng(seed);
  const moved = referenceRun(kernel, before.map((v) => roundingMove(v, rng)), outputSizes, writes);
  return after.map((v, k) => shadowResult(v, reference[k], moved[k]));
}

/** A ShadowResult list in a table cell: the worst result's error and rounding ratio. */
export function formatShadow(results: readonly ShadowResult[]): string {
  if (results.length === 0) return '';
  const worst = results.reduce((w, r) => (r.rounding > w.rounding || Number.isNaN(r.rounding) ? r : w));
  return `${worst.error.toExponential(1)} (${formatRatio(worst.rounding)} rounding)`;
}

export function formatRatio(r: number): string {
  return !Number.isFinite(r) ? String(r) : r >= 100 ? r.toFixed(0) : r.toPrecision(2);
}
