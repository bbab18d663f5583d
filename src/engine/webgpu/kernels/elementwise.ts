/**
 * Elementwise, copy and reduction kernels of the WebGPU backend (shaders/fill, copy, unary, binary,
 * reduce_sum, mse_loss, value_stats, adam). Each function records its dispatches on `rt` (inside the
 * caller's beginOp/endOp, if any) and returns at once; results are read back with rt.read.
 *
 * Strided index spaces (copy, binary, reduceSum) are canonicalised on the host before dispatch: size-1
 * axes are dropped and neighbouring axes that are contiguous in every operand are merged, so the shaders
 * usually walk rank 1-3 spaces whatever the logical rank (beyond the shaders' 8 axes, or 4 kept and 4 reduced axis
 * groups, see copy, binary and reduceSum).
 *
 * Buffers: an input and an output of one call must be different GPUBuffers (WebGPU rejects a buffer bound
 * both read-only and writable in one dispatch).
 */
import type { AdamStep, BinaryOp, UnaryOp } from '../../backend.js';
import { grid1d, type GpuRuntime, type Param } from '../runtime.js';

const WG = 256;
/** Terms each thread sums serially before the tree reduction (reduce_sum, mse_loss, value_stats). */
const SERIAL = 32;
const MAX_RANK = 8;
/** The smallest normal float32 (GPUs may flush smaller magnitudes to 0). */
const MIN_NORMAL_F32 = 2 ** -126;

const UNARY_OPS: Record<UnaryOp, number> = {
  neg: 0, exp: 1, log: 2, sqrt: 3, square: 4, relu: 5, sigmoid: 6, tanh: 7,
  leakyRelu: 8, addScalar: 9, mulScalar: 10, rsubScalar: 11, rdivScalar: 12, powScalar: 13, divScalar: 14,
};

const BINARY_OPS: Record<BinaryOp, number> = {
  add: 0, sub: 1, mul: 2, div: 3, reluGrad: 4, leakyReluGrad: 5, sigmoidGrad: 6, tanhGrad: 7,
};

/** Workgroup grid for `count` workgroups, folded into y beyond 65535 (kernel: w = wid.x + wid.y * nwg.x). */
function groups(count: number): [number, number, number] {
  return grid1d(count, 1);
}

/**
 * Drops size-1 axes and merges axis d into d+1 where every operand has stride[d] == stride[d+1] * shape[d+1].
 * Returns null when some axis is 0 (empty index space).
 */
export function collapseAxes(shape: readonly number[], strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } | null {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    const size = shape[d];
    if (size === 0) return null;
    if (size === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && strides.every((s, k) => outStrides[k][last] === s[d] * size)) {
      outShape[last] *= size;
      strides.forEach((s, k) => (outStrides[k][last] = s[d]));
    } else {
      outShape.push(size);
      strides.forEach((s, k) => outStrides[k].push(s[d]));
    }
  }
  return { shape: outShape, strides: outStrides };
}

function rowMajorStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

/** Eight entries of a vec4 x 2 Params field. */
function vec8(type: 'u32' | 'i32', values: readonly number[]): Param[] {
  const out: Param[] = [];
  for (let i = 0; i < 8; i++) out.push([type, values[i] ?? (type === 'u32' ? 1 : 0)]);
  return out;
}

function vec4(values: readonly number[], pad: number): Param[] {
  const out: Param[] = [];
  for (let i = 0; i < 4; i++) out.push(['u32', values[i] ?? pad]);
  return out;
}

/** out[i] = value for i < n. */
export function fill(rt: GpuRuntime, out: GPUBuffer, n: number, value: number): void {
  if (n <= 0) return;
  rt.dispatch({ shader: 'fill', params: [['u32', n], ['f32', value]], buffers: [out], workgroups: grid1d(n, WG) });
}

/** Strided copy (see Backend.copy): out[outOffset + idx . outStrides] = x[xOffset + idx . xStrides] for idx over shape. */
export function copy(rt: GpuRuntime, x: GPUBuffer, xStrides: readonly number[], xOffset: number,
  out: GPUBuffer, outStrides: readonly number[], outOffset: number, shape: readonly number[]): void {
  const c = collapseAxes(shape, [xStrides, outStrides]);
  if (!c) return;
  // The shader walks at most MAX_RANK axes: beyond that (rare: it takes that many axes that no operand can merge),
  // one dispatch per index of the smallest other axes (as few dispatches as can be), each at its own offsets.
  const rank = c.shape.length;
  const byExtent = c.shape.map((_, d) => d).sort((a, b) => c.shape[a] - c.shape[b] || a - b);
  const looped = new Set(byExtent.slice(0, Math.max(0, rank - MAX_RANK)));
  const walked = c.shape.map((_, d) => d).filter((d) => !looped.has(d));
  const loopAxes = [...looped].sort((a, b) => a - b);
  const inner = walked.map((d) => c.shape[d]);
  const n = inner.reduce((a, b) => a * b, 1);
  forEachIndex(loopAxes.map((d) => c.shape[d]), (idx) => {
    let xo = xOffset, oo = outOffset;
    idx.forEach((k, i) => {
      xo += k * c.strides[0][loopAxes[i]];
      oo += k * c.strides[1][loopAxes[i]];
    });
    rt.dispatch({
      shader: 'copy',
      params: [...vec8('u32', inner), ...vec8('i32', walked.map((d) => c.strides[0][d])), ...vec8('i32', walked.map((d) => c.strides[1][d])),
        ['u32', n], ['u32', inner.length], ['u32', xo], ['u32', oo]],
      buffers: [x, out],
      workgroups: grid1d(n, WG),
    });
  });
}

/** Calls fn with every index of `shape` (row-major order); once, with [], for rank 0. */
function forEachIndex(shape: readonly number[], fn: (idx: readonly number[]) => void): void {
  const idx = shape.map(() => 0);
  for (;;) {
    fn(idx);
    let d = shape.length - 1;
    while (d >= 0 && ++idx[d] === shape[d]) idx[d--] = 0;
    if (d < 0) return;
  }
}

/** out[i] = op(x[i], param) for i < n. */
export function unary(rt: GpuRuntime, op: UnaryOp, x: GPUBuffer, out: GPUBuffer, n: number, param: number): void {
  const code = UNARY_OPS[op];
  if (code === undefined) throw new Error(`webgpu: unknown unary op '${op as string}'`);
  if (n <= 0) return;
  // A scale float32 cannot hold (it would round to 0, a subnormal the GPU may flush, or infinity, where x times it
  // is finite on the CPU, which scales in float64): applied as two float32 factors, a power of two and the rest.
  let factors: number[] | null = op === 'mulScalar' || op === 'divScalar' || op === 'rdivScalar' ? splitScale(op === 'divScalar' ? 1 / param : param) : null;
  // A divisor so small that even its float64 reciprocal overflows: x / p is +-Infinity for every x but 0 (and NaN),
  // the smallest subnormal x (2^-149) included: three factors of 2^127 take it past 2^128.
  if (op === 'divScalar' && param !== 0 && Number.isFinite(param) && !Number.isFinite(1 / param)) factors = [2 ** 127, 2 ** 127, Math.sign(param) * 2 ** 127];
  if (factors) {
    // x (op) f[last], then times each factor before it.
    const temps: GPUBuffer[] = [];
    let src = x;
    for (let i = factors.length - 1; i >= 0; i--) {
      const dst = i === 0 ? out : rt.acquire(n * 4);
      if (i > 0) temps.push(dst);
      unary(rt, i === factors.length - 1 && op === 'rdivScalar' ? 'rdivScalar' : 'mulScalar', src, dst, n, factors[i]);
      src = dst;
    }
    for (const t of temps) rt.release(t);
    return;
  }
  rt.dispatch({
    shader: 'unary', constants: { OP: code },
    params: [['u32', n], ['f32', param]], buffers: [x, out], workgroups: grid1d(n, WG),
  });
}

/**
 * [2^e, s / 2^e], both normal float32 numbers (as far as the range allows), for a finite non-zero scale s that float32
 * does not hold as a normal number; null for any other s (0, NaN, +-Infinity included: those float32 holds).
 */
export function splitScale(s: number): [number, number] | null {
  if (!Number.isFinite(s) || s === 0) return null;
  const f = Math.fround(s);
  if (Number.isFinite(f) && Math.abs(f) >= MIN_NORMAL_F32) return null;
  const e = Math.min(127, Math.max(-126, Math.round(Math.log2(Math.abs(s)) / 2)));
  return [2 ** e, s / 2 ** e];
}

/** out[idx] = a[idx . aStrides] (op) b[idx . bStrides] for idx over outShape (row-major out). */
export function binary(rt: GpuRuntime, op: BinaryOp, a: GPUBuffer, aStrides: readonly number[], b: GPUBuffer, bStrides: readonly number[],
  out: GPUBuffer, outShape: readonly number[], param: number): void {
  const code = BINARY_OPS[op];
  if (code === undefined) throw new Error(`webgpu: unknown binary op '${op as string}'`);
  const c = collapseAxes(outShape, [aStrides, bStrides, rowMajorStrides(outShape)]);
  if (!c) return;
  const n = c.shape.reduce((p, q) => p * q, 1);
  if (c.shape.length > MAX_RANK) {
    // More axes than the shader walks (see copy): both operands are first copied out in out's row-major order.
    const dense = rowMajorStrides(outShape);
    const ta = rt.acquire(n * 4);
    const tb = rt.acquire(n * 4);
    copy(rt, a, aStrides, 0, ta, dense, 0, outShape);
    copy(rt, b, bStrides, 0, tb, dense, 0, outShape);
    binary(rt, op, ta, [1], tb, [1], out, [n], param);
    rt.release(ta);
    rt.release(tb);
    return;
  }
  rt.dispatch({
    shader: 'binary', constants: { OP: code },
    params: [...vec8('u32', c.shape), ...vec8('i32', c.strides[0]), ...vec8('i32', c.strides[1]),
      ['u32', n], ['u32', c.shape.length], ['f32', param]],
    buffers: [a, b, out],
    workgroups: grid1d(n, WG),
  });
}

function nextPow2(v: number): number {
  let p = 1;
  while (p < v) p *= 2;
  return p;
}

/**
 * One reduce_sum pass (and the passes after it): out[o] = scale * sum_r x[keptOffset(o) + redOffset(r)],
 * with at most 4 kept and 4 reduced axis groups (innermost last).
 */
function reduceGroups(rt: GpuRuntime, x: GPUBuffer, out: GPUBuffer,
  kept: { shape: number[]; strides: number[] }, red: { shape: number[]; strides: number[] }, innerReduced: boolean, innerKept: number, scale: number): void {
  const O = kept.shape.reduce((a, b) => a * b, 1);
  const R = red.shape.reduce((a, b) => a * b, 1);
  // Threads per output: enough that each sums ~8 terms, up to the whole workgroup.
  let ry = R <= 8 ? 1 : Math.min(WG, nextPow2(Math.ceil(R / 8)));
  // When the innermost axis is kept, keep >= min(64, its extent) consecutive outputs per workgroup so that
  // neighbouring threads read neighbouring addresses.
  if (!innerReduced) ry = Math.min(ry, WG / Math.min(64, nextPow2(innerKept)));
  const ox = WG / ry;
  const blocks = Math.ceil(O / ox);
  // Splits of the reduced range so that no thread sums more than SERIAL terms serially.
  const S = Math.max(1, Math.ceil(R / (ry * SERIAL)));
  const chunk = Math.ceil(Math.ceil(R / S) / ry) * ry;
  const S2 = Math.ceil(R / chunk);
  const target = S2 > 1 ? rt.acquire(O * S2 * 4) : out;
  rt.dispatch({
    shader: 'reduce_sum', constants: { RY: ry },
    params: [...vec4(kept.shape, 1), ...vec4(kept.strides, 0), ...vec4(red.shape, 1), ...vec4(red.strides, 0),
      ['u32', O], ['u32', R], ['u32', chunk], ['u32', S2], ['u32', blocks], ['u32', kept.shape.length], ['u32', red.shape.length],
      ['f32', S2 > 1 ? 1 : scale]],
    buffers: [x, target],
    workgroups: groups(blocks * S2),
  });
  if (S2 > 1) {
    // Partials are [O, S2] row-major: reduce the inner axis.
    const keptShape = O > 1 ? [O] : [];
    reduceGroups(rt, target, out, { shape: keptShape, strides: keptShape.map(() => S2) }, { shape: [S2], strides: [1] }, true, 1, scale);
    rt.release(target);
  }
}

/** out = scale * sum of x (row-major, `shape`) over `axes` (sorted, unique); out holds the kept axes in order. */
export function reduceSum(rt: GpuRuntime, x: GPUBuffer, shape: readonly number[], axes: readonly number[], out: GPUBuffer, scale: number): void {
  const reduced = new Set(axes);
  let O = 1, R = 1;
  for (let d = 0; d < shape.length; d++) {
    if (reduced.has(d)) R *= shape[d];
    else O *= shape[d];
  }
  if (O === 0) return;
  if (R === 0) {
    // An empty sum is 0, times the scale: a mean over nothing is 0 * (1/0) = NaN, as on the CPU.
    fill(rt, out, O, 0 * scale);
    return;
  }
  // Axis groups: size-1 axes dropped, neighbours of the same kind merged (x is contiguous).
  const sizes: number[] = [];
  const kinds: boolean[] = [];
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const r = reduced.has(d);
    if (kinds.length > 0 && kinds[kinds.length - 1] === r) sizes[sizes.length - 1] *= shape[d];
    else {
      sizes.push(shape[d]);
      kinds.push(r);
    }
  }
  const strides = rowMajorStrides(sizes);
  const kept = { shape: [] as number[], strides: [] as number[] };
  const red = { shape: [] as number[], strides: [] as number[] };
  sizes.forEach((s, i) => {
    const g = kinds[i] ? red : kept;
    g.shape.push(s);
    g.strides.push(strides[i]);
  });
  if (kept.shape.length > 4 || red.shape.length > 4) {
    // The shader walks at most 4 groups of each kind: x is first copied out with the kept axes first and the reduced
    // ones last (rare: kept and reduced axes alternating more than 4 times), then reduced as [O, R].
    const keptStrides = rowMajorStrides(kept.shape).map((st) => st * R);
    const redStrides = rowMajorStrides(red.shape);
    let ki = 0, ri = 0;
    const dst = kinds.map((r) => (r ? redStrides[ri++] : keptStrides[ki++]));
    const t = rt.acquire(O * R * 4);
    copy(rt, x, strides, 0, t, dst, 0, sizes);
    reduceGroups(rt, t, out, { shape: [O], strides: [R] }, { shape: [R], strides: [1] }, true, 1, scale);
    rt.release(t);
    return;
  }
  const innerReduced = kinds.length > 0 && kinds[kinds.length - 1];
  const innerKept = kinds.length > 0 && !innerReduced ? sizes[sizes.length - 1] : 1;
  reduceGroups(rt, x, out, kept, red, innerReduced, innerKept, scale);
}

/** out[0] = mean((a - b)^2) over n elements (NaN when n = 0, as 0/0 on the CPU). */
export function mseLoss(rt: GpuRuntime, a: GPUBuffer, b: GPUBuffer, out: GPUBuffer, n: number): void {
  if (n <= 0) {
    fill(rt, out, 1, NaN);
    return;
  }
  const chunk = WG * SERIAL;
  const G = Math.ceil(n / chunk);
  const partials = G > 1 ? rt.acquire(G * 4) : out;
  rt.dispatch({
    shader: 'mse_loss',
    params: [['u32', n], ['u32', chunk], ['u32', G], ['f32', G > 1 ? 1 : 1 / n]],
    buffers: [a, b, partials],
    workgroups: groups(G),
  });
  if (G > 1) {
    reduceGroups(rt, partials, out, { shape: [], strides: [] }, { shape: [G], strides: [1] }, true, 1, 1 / n);
    rt.release(partials);
  }
}

/**
 * out (5 floats) = [min, max, sum, nanCount, infCount] over x[0..n): min, max and sum of the finite values
 * only (min = +Inf, max = -Inf, sum = 0 when none is finite); the counts are exact up to 2^24.
 * mean = sum / (n - nanCount - infCount).
 */
export function valueStats(rt: GpuRuntime, x: GPUBuffer, n: number, out: GPUBuffer): void {
  const chunk = WG * SERIAL;
  const G = Math.max(1, Math.ceil(n / chunk));
  const partials = G > 1 ? rt.acquire(G * 5 * 4) : out;
  rt.dispatch({
    shader: 'value_stats', constants: { STAGE: 0 },
    params: [['u32', n], ['u32', chunk], ['u32', G], ['u32', G > 1 ? 0 : 1]],
    buffers: [x, partials],
    workgroups: groups(G),
  });
  if (G > 1) {
    rt.dispatch({
      shader: 'value_stats', constants: { STAGE: 1 },
      params: [['u32', G], ['u32', G], ['u32', 1], ['u32', 1]],
      buffers: [partials, out],
      workgroups: [1, 1, 1],
    });
    rt.release(partials);
  }
}

/** One fused Adam / AdamW step on n parameters, updating p, m and v in place. */
export function adam(rt: GpuRuntime, p: GPUBuffer, g: GPUBuffer, m: GPUBuffer, v: GPUBuffer, n: number, o: AdamStep): void {
  if (n <= 0) return;
  rt.dispatch({
    shader: 'adam',
    params: [['u32', n], ['f32', o.lr], ['f32', o.beta1], ['f32', o.beta2], ['f32', 1 - o.beta1], ['f32', 1 - o.beta2], ['f32', o.eps],
      ['f32', o.weightDecay], ['f32', 1 - o.lr * o.weightDecay],
      ['f32', 1 - Math.pow(o.beta1, o.step)], ['f32', 1 - Math.pow(o.beta2, o.step)], ['u32', o.decoupled ? 1 : 0]],
    buffers: [p, g, m, v],
    workgroups: grid1d(n, WG),
  });
}
