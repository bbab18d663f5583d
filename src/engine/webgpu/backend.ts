/**
 * The webgpu backend: the Backend interface on a GpuRuntime. Each kernel method is one call into
 * src/engine/webgpu/kernels/*.ts, which dispatches the hand-written WGSL in shaders/. float32 only
 * (WGSL has no f64; gradient checks in float64 run on the CPU backend).
 */
import type { AdamStep, Backend, BatchNorm2dParams, BinaryOp, Conv2dGeometry, KernelNote, Storage, UnaryOp, ValueStats } from '../backend.js';
import type { DType, FloatArray } from '../dtype.js';
import { requestGpuDevice, type GpuDevice } from './device.js';
import { GpuRuntime } from './runtime.js';
import { loadShaders } from './shaders.js';
import * as conv from './kernels/conv.js';
import * as ew from './kernels/elementwise.js';
import * as norm from './kernels/norm.js';

/** An adapter in words, for logs and reports: 'webgpu: <description> (vendor v, architecture[, software])'. */
export function describeGpu(gpu: GpuDevice): string {
  const i = gpu.info;
  return `webgpu: ${i.description || i.device || 'adapter'} (vendor ${i.vendor || '?'}, ${i.architecture || '?'}${gpu.software ? ', software' : ''})`;
}

export class GpuStorage implements Storage {
  refs = 1;
  version = 0;
  constructor(readonly backend: WebGPUBackend, readonly dtype: DType, readonly size: number, public buffer: GPUBuffer | null) {}
}

export class WebGPUBackend implements Backend {
  readonly name = 'webgpu' as const;
  poison = false;
  readonly rt: GpuRuntime;
  private liveStorages = 0;
  private liveBytes = 0;

  constructor(readonly gpu: GpuDevice) {
    this.rt = new GpuRuntime(gpu.device, gpu.hasTimestamps, gpu.software);
  }

  describe(): string {
    return describeGpu(this.gpu);
  }

  /** The GPU buffer behind a storage (throws if it was freed). */
  buf(s: Storage): GPUBuffer {
    const b = (s as GpuStorage).buffer;
    if (b === null) throw new Error('webgpu: storage used after it was freed');
    return b;
  }

  alloc(dtype: DType, size: number, op?: string): Storage {
    if (dtype !== 'float32') throw new Error(`webgpu: ${dtype} is not supported (WGSL has no f64); use float32, or the cpu backend for float64`);
    const buffer = this.rt.acquire(Math.max(4, size * 4), op);
    if (this.poison) ew.fill(this.rt, buffer, size, NaN);
    this.liveStorages++;
    this.liveBytes += size * 4;
    return new GpuStorage(this, dtype, size, buffer);
  }

  free(s: Storage): void {
    const g = s as GpuStorage;
    if (g.buffer === null) return;
    this.rt.release(g.buffer);
    g.buffer = null;
    this.liveStorages--;
    this.liveBytes -= g.size * 4;
  }

  write(s: Storage, data: ArrayLike<number>): void {
    if (data.length !== s.size) throw new Error(`webgpu: write of ${data.length} values into a storage of ${s.size}`);
    this.rt.write(this.buf(s), data instanceof Float32Array ? data : Float32Array.from(data));
  }

  async read(s: Storage): Promise<FloatArray> {
    return new Float32Array(await this.rt.read(this.buf(s), s.size * 4));
  }

  readSync(): FloatArray {
    throw new Error('webgpu: synchronous readback is not possible; use await tensor.data()');
  }

  memory(): { storages: number; bytes: number } {
    return { storages: this.liveStorages, bytes: this.liveBytes };
  }

  async valueStats(s: Storage): Promise<ValueStats> {
    const out = this.rt.acquire(32);
    let stats: Float32Array;
    try {
      ew.valueStats(this.rt, this.buf(s), s.size, out);
      stats = new Float32Array(await this.rt.read(out, 20));
    } finally {
      this.rt.release(out);
    }
    const [min, max, sum, nan, inf] = stats;
    const finite = s.size - nan - inf;
    return { min: finite > 0 ? min : NaN, max: finite > 0 ? max : NaN, mean: finite > 0 ? sum / finite : NaN, nan, inf };
  }

  beginOp(name: string, timed = false): void {
    this.rt.beginOp(name, timed);
  }

  endOp(): Promise<{ gpuMs?: number }> {
    return this.rt.endOp();
  }

  sync(): Promise<void> {
    return this.rt.sync();
  }

  fill(out: Storage, value: number): void {
    ew.fill(this.rt, this.buf(out), out.size, value);
  }

  copy(x: Storage, xStrides: readonly number[], xOffset: number, out: Storage, outStrides: readonly number[], outOffset: number, shape: readonly number[]): void {
    ew.copy(this.rt, this.buf(x), xStrides, xOffset, this.buf(out), outStrides, outOffset, shape);
  }

  unary(op: UnaryOp, x: Storage, out: Storage, param: number): void {
    ew.unary(this.rt, op, this.buf(x), this.buf(out), out.size, param);
  }

  binary(op: BinaryOp, a: Storage, aStrides: readonly number[], b: Storage, bStrides: readonly number[], out: Storage, outShape: readonly number[], param: number): void {
    ew.binary(this.rt, op, this.buf(a), aStrides, this.buf(b), bStrides, this.buf(out), outShape, param);
  }

  reduceSum(x: Storage, shape: readonly number[], axes: readonly number[], out: Storage, scale: number): void {
    ew.reduceSum(this.rt, this.buf(x), shape, axes, this.buf(out), scale);
  }

  matmul(a: Storage, b: Storage, out: Storage, batch: number, m: number, k: number, n: number, transA: boolean, transB: boolean): KernelNote {
    return conv.matmul(this.rt, this.buf(a), this.buf(b), this.buf(out), batch, m, k, n, transA, transB);
  }

  conv2d(x: Storage, w: Storage, bias: Storage | null, out: Storage, g: Conv2dGeometry): KernelNote {
    return conv.conv2d(this.rt, this.buf(x), this.buf(w), bias ? this.buf(bias) : null, this.buf(out), g);
  }

  conv2dGradInput(dy: Storage, w: Storage, dx: Storage, g: Conv2dGeometry): KernelNote {
    return conv.conv2dGradInput(this.rt, this.buf(dy), this.buf(w), this.buf(dx), g);
  }

  conv2dGradWeight(x: Storage, dy: Storage, dw: Storage, g: Conv2dGeometry): KernelNote {
    return conv.conv2dGradWeight(this.rt, this.buf(x), this.buf(dy), this.buf(dw), g);
  }

  upsampleNearest2d(x: Storage, out: Storage, n: number, c: number, h: number, w: number, scaleH: number, scaleW: number): void {
    norm.upsampleNearest2d(this.rt, this.buf(x), this.buf(out), n, c, h, w, scaleH, scaleW);
  }

  upsampleNearest2dGrad(dy: Storage, dx: Storage, n: number, c: number, h: number, w: number, scaleH: number, scaleW: number): void {
    norm.upsampleNearest2dGrad(this.rt, this.buf(dy), this.buf(dx), n, c, h, w, scaleH, scaleW);
  }

  batchNorm2d(x: Storage, gamma: Storage, beta: Storage, runningMean: Storage | null, runningVar: Storage | null,
    y: Storage, saveMean: Storage, saveInvStd: Storage, p: BatchNorm2dParams): void {
    norm.batchNorm2d(this.rt, this.buf(x), this.buf(gamma), this.buf(beta), runningMean ? this.buf(runningMean) : null,
      runningVar ? this.buf(runningVar) : null, this.buf(y), this.buf(saveMean), this.buf(saveInvStd), p);
  }

  batchNorm2dGrad(dy: Storage, x: Storage, gamma: Storage, saveMean: Storage, saveInvStd: Storage,
    dx: Storage, dgamma: Storage, dbeta: Storage, p: BatchNorm2dParams): void {
    norm.batchNorm2dGrad(this.rt, this.buf(dy), this.buf(x), this.buf(gamma), this.buf(saveMean), this.buf(saveInvStd),
      this.buf(dx), this.buf(dgamma), this.buf(dbeta), p);
  }

  mseLoss(a: Storage, b: Storage, out: Storage, size: number): void {
    ew.mseLoss(this.rt, this.buf(a), this.buf(b), this.buf(out), size);
  }

  adam(p: Storage, g: Storage, m: Storage, v: Storage, o: AdamStep): void {
    ew.adam(this.rt, this.buf(p), this.buf(g), this.buf(m), this.buf(v), p.size, o);
  }
}

/** Creates the webgpu backend, or returns null when no adapter is available. */
export async function createWebGPUBackend(): Promise<WebGPUBackend | null> {
  const gpu = await requestGpuDevice();
  if (gpu) await loadShaders();
  return gpu ? new WebGPUBackend(gpu) : null;
}
