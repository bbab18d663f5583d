/**
 * The CPU backend: plain TypeScript kernels over Float32Array / Float64Array, the reference
 * that every other backend is tested against. Large storages are backed by SharedArrayBuffer
 * so the convolution and matmul kernels can split work across worker threads (see threads.ts).
 */
import type { AdamStep, Backend, BatchNorm2dParams, BinaryOp, Conv2dGeometry, KernelNote, Storage, UnaryOp, ValueStats } from '../backend.js';
import { allocArray, bytesPerElement, sizeOf, type DType, type FloatArray } from '../dtype.js';
import { batchNorm2dBackward, batchNorm2dForward } from './batchnorm.js';
import { conv2dForward, conv2dGradInput, conv2dGradWeight, matmul, splitEvenly, task } from './conv.js';
import { binaryKernel, copyKernel, reduceSumKernel, unaryKernel } from './elementwise.js';
import { upsampleNearest2dBackward, upsampleNearest2dForward } from './upsample.js';
import { host } from '../host.js';
import { planThreads, runParallel } from './threads.js';

/** Storages at least this large are SharedArrayBuffer-backed so worker threads can use them (where there are any). */
const SHARED_MIN_ELEMENTS = 1 << 14;

/**
 * What an element of a unary, binary or copy kernel counts as, in flops, when planning threads (threads.ts gives a
 * thread at least 1 MFLOP): 1e6 / 16 = 62,500 elements a part, 0.1-0.3 ms at the 2-5 ns an element these
 * memory-bound loops take, against the 20-30 us of handing a part to a worker.
 */
const ELEMENT_WORK = 16;

/** Element ranges of an n-element output for the threads planThreads allows (one range: run here). */
function elementParts(read: readonly (FloatArray | null)[], written: FloatArray, n: number): [number, number][] {
  return splitEvenly(n, planThreads(read, [written], n * ELEMENT_WORK, n));
}

export class CpuStorage implements Storage {
  refs = 1;
  version = 0;
  constructor(readonly backend: CpuBackend, readonly dtype: DType, readonly size: number, public data: FloatArray | null) {}
}

export class CpuBackend implements Backend {
  readonly name = 'cpu' as const;
  poison = false;
  private liveStorages = 0;
  private liveBytes = 0;

  describe(): string {
    return `cpu: ${host.cpuModel || 'unknown'} x ${host.cpus}, ${host.runtime}`;
  }

  /** The typed array behind a storage (throws if it was freed). */
  array(s: Storage): FloatArray {
    const data = (s as CpuStorage).data;
    if (data === null) throw new Error('cpu: storage used after it was freed');
    return data;
  }

  alloc(dtype: DType, size: number): Storage {
    const data = allocArray(dtype, size, size >= SHARED_MIN_ELEMENTS && host.threads !== null);
    if (this.poison) data.fill(NaN);
    this.liveStorages++;
    this.liveBytes += size * bytesPerElement(dtype);
    return new CpuStorage(this, dtype, size, data);
  }

  free(s: Storage): void {
    const c = s as CpuStorage;
    if (c.data === null) return;
    c.data = null;
    this.liveStorages--;
    this.liveBytes -= c.size * bytesPerElement(c.dtype);
  }

  write(s: Storage, data: ArrayLike<number>): void {
    const a = this.array(s);
    if (data.length !== a.length) throw new Error(`cpu: write of ${data.length} values into a storage of ${a.length}`);
    a.set(data);
  }

  read(s: Storage): Promise<FloatArray> {
    return Promise.resolve(this.readSync(s));
  }

  readSync(s: Storage): FloatArray {
    return this.array(s).slice();
  }

  memory(): { storages: number; bytes: number } {
    return { storages: this.liveStorages, bytes: this.liveBytes };
  }

  valueStats(s: Storage): ValueStats {
    const a = this.array(s);
    let min = Infinity, max = -Infinity, sum = 0, nan = 0, inf = 0, finite = 0;
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      if (Number.isNaN(v)) nan++;
      else if (!Number.isFinite(v)) inf++;
      else {
        if (v < min) min = v;
        if (v > max) max = v;
        sum += v;
        finite++;
      }
    }
    return { min: finite ? min : NaN, max: finite ? max : NaN, mean: finite ? sum / finite : NaN, nan, inf };
  }

  fill(out: Storage, value: number): void {
    this.array(out).fill(value);
  }

  copy(x: Storage, xStrides: readonly number[], xOffset: number, out: Storage, outStrides: readonly number[], outOffset: number, shape: readonly number[]): void {
    const xa = this.array(x), o = this.array(out);
    const parts = elementParts([xa], o, sizeOf(shape));
    runParallel(parts.slice(1).map(([s, e]) => task('copyKernel', xa, xStrides, xOffset, o, outStrides, outOffset, shape, s, e)),
      () => copyKernel(xa, xStrides, xOffset, o, outStrides, outOffset, shape, parts[0][0], parts[0][1]));
  }

  unary(op: UnaryOp, x: Storage, out: Storage, param: number): void {
    const xa = this.array(x), o = this.array(out);
    const parts = elementParts([xa], o, o.length);
    runParallel(parts.slice(1).map(([s, e]) => task('unaryKernel', op, xa, o, param, s, e)),
      () => unaryKernel(op, xa, o, param, parts[0][0], parts[0][1]));
  }

  binary(op: BinaryOp, a: Storage, aStrides: readonly number[], b: Storage, bStrides: readonly number[], out: Storage, outShape: readonly number[], param: number): void {
    const aa = this.array(a), ba = this.array(b), o = this.array(out);
    const parts = elementParts([aa, ba], o, o.length);
    runParallel(parts.slice(1).map(([s, e]) => task('binaryKernel', op, aa, aStrides, ba, bStrides, o, outShape, param, s, e)),
      () => binaryKernel(op, aa, aStrides, ba, bStrides, o, outShape, param, parts[0][0], parts[0][1]));
  }

  reduceSum(x: Storage, shape: readonly number[], axes: readonly number[], out: Storage, scale: number): void {
    reduceSumKernel(this.array(x), shape, axes, this.array(out), scale);
  }

  matmul(a: Storage, b: Storage, out: Storage, batch: number, m: number, k: number, n: number, transA: boolean, transB: boolean): KernelNote {
    return matmul(this.array(a), this.array(b), this.array(out), batch, m, k, n, transA, transB);
  }

  conv2d(x: Storage, w: Storage, bias: Storage | null, out: Storage, g: Conv2dGeometry): KernelNote {
    return conv2dForward(this.array(x), this.array(w), bias ? this.array(bias) : null, this.array(out), g);
  }

  conv2dGradInput(dy: Storage, w: Storage, dx: Storage, g: Conv2dGeometry): KernelNote {
    return conv2dGradInput(this.array(dy), this.array(w), this.array(dx), g);
  }

  conv2dGradWeight(x: Storage, dy: Storage, dw: Storage, g: Conv2dGeometry): KernelNote {
    return conv2dGradWeight(this.array(x), this.array(dy), this.array(dw), g);
  }

  upsampleNearest2d(x: Storage, out: Storage, n: number, c: number, h: number, w: number, scaleH: number, scaleW: number): void {
    upsampleNearest2dForward(this.array(x), this.array(out), n, c, h, w, scaleH, scaleW);
  }

  upsampleNearest2dGrad(dy: Storage, dx: Storage, n: number, c: number, h: number, w: number, scaleH: number, scaleW: number): void {
    upsampleNearest2dBackward(this.array(dy), this.array(dx), n, c, h, w, scaleH, scaleW);
  }

  batchNorm2d(x: Storage, gamma: Storage, beta: Storage, runningMean: Storage | null, runningVar: Storage | null,
    y: Storage, saveMean: Storage, saveInvStd: Storage, p: BatchNorm2dParams): void {
    batchNorm2dForward(this.array(x), this.array(gamma), this.array(beta), runningMean ? this.array(runningMean) : null,
      runningVar ? this.array(runningVar) : null, this.array(y), this.array(saveMean), this.array(saveInvStd), p);
  }

  batchNorm2dGrad(dy: Storage, x: Storage, gamma: Storage, saveMean: Storage, saveInvStd: Storage,
    dx: Storage, dgamma: Storage, dbeta: Storage, p: BatchNorm2dParams): void {
    batchNorm2dBackward(this.array(dy), this.array(x), this.array(gamma), this.array(saveMean), this.array(saveInvStd),
      this.array(dx), this.array(dgamma), this.array(dbeta), p);
  }

  mseLoss(a: Storage, b: Storage, out: Storage, size: number): void {
    const x = this.array(a), y = this.array(b);
    let s = 0;
    for (let i = 0; i < size; i++) {
      const d = x[i] - y[i];
      s += d * d;
    }
    this.array(out)[0] = s / size;
  }

  adam(p: Storage, g: Storage, m: Storage, v: Storage, o: AdamStep): void {
    adamKernel(this.array(p), this.array(g), this.array(m), this.array(v), o);
  }
}

/** The fused Adam / AdamW update (see AdamStep in backend.ts), in place on p, m and v. */
export function adamKernel(p: FloatArray, g: FloatArray, m: FloatArray, v: FloatArray, o: AdamStep): void {
  const { lr, beta1, beta2, eps, weightDecay, decoupled, step } = o;
  const c1 = 1 - Math.pow(beta1, step);
  const c2 = 1 - Math.pow(beta2, step);
  const decay = decoupled ? 1 - lr * weightDecay : 1;
  const l2 = decoupled ? 0 : weightDecay;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] + l2 * p[i];
    const mi = beta1 * m[i] + (1 - beta1) * gi;
    const vi = beta2 * v[i] + (1 - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - lr * (mi / c1) / (Math.sqrt(vi / c2) + eps);
  }
}
