/**
 * The shadow audit: each op that a trace started with { shadow: true } records is run again on the CPU in float64,
 * from the same input values, and each of its results (outputs, then inputs it wrote in place) is compared with that
 * reference. Where a whole step's error against float64 says only how far off the end result is, the shadow says
 * which op let the error in: each op is judged on its own inputs, so errors made upstream do not count against it.
 *
 * A raw relative error misleads where the result cancels (a sum of terms of both signs that nearly vanishes: a conv
 * bias's gradient in front of batch norm is zero but for rounding), so each result is also measured against the
 * op's float32 conditioning: how far the float64 result moves when the inputs move by float32's rounding (each
 * value times 1 + u 2^-24, u uniform in [-1, 1], from a fixed seed), or, where that is less, half a float32 ulp of the
 * result (storing it in float32 rounds it that much). An op is then judged by `rounding`, its error in units of that: about 1 or below, the op is as exact as float32 inputs allow; a kernel that accumulates in
 * float32 lands at a few to a few tens (more for long sums); a wrong one lands far above.
 *
 * Costs: every input is read before the kernel and every result after it (on webgpu, a readback each, in order
 * with the op's work, held until trace.settle()), and the reference runs twice per op on the CPU in float64.
 * For audits at development sizes, not for training runs.
 */
import type { Backend, KernelNote, Storage } from '../backend.js';
import { Rng } from '../random.js';
import { cpuBackend } from '../registry.js';

export interface ShadowResult {
  /** max |value - reference| / max |reference| (the absolute difference where the reference is all zero). */
  error: number;
  /**
   * max |value - reference| / the larger of max |reference(inputs moved by float32 rounding) - reference| and half a
   * float32 ulp of max |reference| (rounding the result itself): the error in units of what float32 alone decides (0
   * where the value is exact; Infinity where that is 0 yet the values differ, or where the value is NaN or infinite
   * and the reference is not). In float32's units on a float64 backend too.
   */
  rounding: number;
}

type Kernel = (backend: Backend, outs: Storage[], ins: Storage[]) => KernelNote | void;

/** Half a float32 ulp, relative: the rounding a float32 input may already carry. */
const F32_ROUNDING = 2 ** -24;

/** Copies of the values of `storages` as they are now (in order with the work recorded so far, on any backend). */
export function snapshot(backend: Backend, storages: Storage[]): Promise<Float64Array[]> {
  return Promise.all(storages.map(async (s) => Float64Array.from(await backend.read(s))));
}

/**
 * Runs `kernel` on the CPU in float64 from `inputs` and returns its results: each output (of the sizes given), then
 * each input it wrote in place (indices `writes`), after the kernel.
 */
export function referenceRun(kernel: Kernel, inputs: Float64Array[], outputSizes: number[], writes: readonly number[]): Float64Array[] {
  const cpu = cpuBackend();
  const ins: Storage[] = [];
  const outs: Storage[] = [];
  try {
    for (const v of inputs) {
      const s = cpu.alloc('float64', v.length);
      ins.push(s);
      cpu.write(s, v);
    }
    for (const n of outputSizes) outs.push(cpu.alloc('float64', n));
    kernel(cpu, outs, ins);
    return [...outs, ...writes.map((i) => ins[i])].map((s) => cpu.readSync(s) as Float64Array);
  } finally {
    for (const s of [...ins, ...outs]) cpu.free(s);
  }
}

/** `values` with each element times 1 + u 2^-24, u uniform in [-1, 1) (zeros and signs kept). */
export function roundingMove(values: Float64Array, rng: Rng): Float64Array {
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i] * (1 + (2 * rng.next() - 1) * F32_ROUNDING);
  return out;
}

/** max |a - b| (Infinity if either side has a NaN where the other does not, or an infinity that differs). */
export function maxDiff(a: Float64Array, b: Float64Array): number {
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
export function shadowResult(value: Float64Array, reference: Float64Array, moved: Float64Array): ShadowResult {
  const diff = maxDiff(value, reference);
  let scale = 0;
  for (const v of reference) if (Math.abs(v) > scale) scale = Math.abs(v);
  // What float32 alone decides: the inputs' rounding (the move) or the result's own (half an ulp of its largest value).
  const move = Math.max(maxDiff(moved, reference), scale * F32_ROUNDING);
  const ratio = (d: number, by: number): number => (d === 0 ? 0 : by > 0 && Number.isFinite(by) ? d / by : Infinity);
  return { error: scale > 0 && Number.isFinite(scale) ? ratio(diff, scale) : diff, rounding: ratio(diff, move) };
}

/**
 * Compares an op's results with the float64 reference: `before` are its inputs' values before the kernel ran,
 * `after` its results' values (outputs, then the inputs in `writes`). The rounding move is drawn from `seed`, so
 * the same op on the same values gets the same ShadowResult.
 */
export function compareWithReference(kernel: Kernel, before: Float64Array[], after: Float64Array[], outputSizes: number[],
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
