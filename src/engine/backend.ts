/**
 * The Backend interface: memory (alloc / free / write / read) plus one method per kernel.
 *
 * A kernel reads input storages and writes output storages that the dispatch point
 * allocated; it knows nothing of tensors, autograd or tracing. Shapes arrive as plain
 * numbers. Every kernel fully overwrites its outputs (outputs are never assumed zero),
 * except where a method says it updates a storage in place.
 */
import type { DType, FloatArray } from './dtype.js';

/** One allocation on a backend. Tensors hold these; views share one through `refs`. */
export interface Storage {
  readonly backend: Backend;
  readonly dtype: DType;
  readonly size: number;
  /** Number of tensors that use this storage; freed when it drops to zero. */
  refs: number;
  /**
   * How many times its contents were overwritten in place after it was first written (Adam's step, batch norm's
   * running statistics, loadStateDict). Autograd checks that no input of an op changed between its forward and backward.
   */
  version: number;
}

/** min, max, mean and the count of NaN and +-Inf over a storage. */
export interface ValueStats {
  min: number;
  max: number;
  mean: number;
  nan: number;
  inf: number;
}

export type UnaryOp =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'square' | 'relu' | 'sigmoid' | 'tanh'
  | 'leakyRelu'   // x > 0 ? x : p * x
  | 'addScalar'   // x + p
  | 'mulScalar'   // x * p
  | 'rsubScalar'  // p - x
  | 'divScalar'   // x / p
  | 'rdivScalar'  // p / x
  | 'powScalar';  // x ** p

export type BinaryOp =
  | 'add' | 'sub' | 'mul' | 'div'
  | 'reluGrad'       // a * (b > 0)               a = dy, b = x
  | 'leakyReluGrad'  // a * (b > 0 ? 1 : p)        a = dy, b = x
  | 'sigmoidGrad'    // a * b * (1 - b)           a = dy, b = y
  | 'tanhGrad';      // a * (1 - b * b)           a = dy, b = y

/**
 * Geometry of a 2-D convolution in NCHW with weight [outChannels, inChannels, kernelH, kernelW]:
 *   out[n,o,oy,ox] = bias[o] + sum_{c,ky,kx} x[n,c, oy*strideH - padTop + ky, ox*strideW - padLeft + kx] * w[o,c,ky,kx]
 * with x = 0 outside the image. outHeight/outWidth are given explicitly, so the padding at the
 * bottom/right is implied (and may be negative for transposed convolutions with output padding).
 */
export interface Conv2dGeometry {
  batch: number;
  inChannels: number;
  inHeight: number;
  inWidth: number;
  outChannels: number;
  kernelH: number;
  kernelW: number;
  outHeight: number;
  outWidth: number;
  strideH: number;
  strideW: number;
  padTop: number;
  padLeft: number;
}

/** One Adam step: m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2; p -= lr m^ / (sqrt(v^) + eps), with bias-corrected m^, v^.
 *  Adam (decoupled false): g' = g + weightDecay p. AdamW (decoupled true): g' = g and p *= 1 - lr weightDecay first. */
export interface AdamStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  decoupled: boolean;
  /** 1-based step count t, for the bias corrections 1 - beta^t. */
  step: number;
}

export interface BatchNorm2dParams {
  batch: number;
  channels: number;
  height: number;
  width: number;
  eps: number;
  momentum: number;
  /** training: normalise with batch statistics (and update the running ones); eval: with the running statistics. */
  training: boolean;
}

/**
 * What a kernel ran, in words, where the backend chooses between ways to compute an op (the convolutions and
 * matmul: the CPU's direct loops or im2col + GEMM and on how many threads, the GPU's tile shape and K splits);
 * undefined where there was nothing to report. The op's kernel returns it to runOp, and the trace records it
 * (TraceEntry.kernel), so an audit shows which code computed each op.
 */
export type KernelNote = string | undefined;

export interface Backend {
  readonly name: 'cpu' | 'webgpu';
  /** When true, every new storage is filled with NaN, so tests catch kernels that leave outputs unwritten. */
  poison: boolean;
  /** Adapter / machine description for reports. */
  describe(): string;

  /** A new storage of `size` values; `op`: the op it is an output of, for error messages. */
  alloc(dtype: DType, size: number, op?: string): Storage;
  free(s: Storage): void;
  write(s: Storage, data: ArrayLike<number>): void;
  read(s: Storage): Promise<FloatArray>;
  /** Synchronous readback where the backend can (CPU); throws otherwise. */
  readSync(s: Storage): FloatArray;
  /** Live storages and their bytes (memory accounting). */
  memory(): { storages: number; bytes: number };
  /** Value statistics for the trace and the NaN guard; a Promise on backends that must read back asynchronously (webgpu). */
  valueStats(s: Storage): ValueStats | Promise<ValueStats>;
  /**
   * Called by the dispatch point around each op's kernel (webgpu: untimed ops share one compute pass, each inside a
   * debug group named after it, with no error scopes of their own; a timed op gets a pass of its own, labelled with
   * its name). `timed`: a trace is recording, so measure the op's device time (webgpu: timestamp queries, where the
   * adapter has them).
   */
  beginOp?(name: string, timed?: boolean): void;
  /** Ends the op; resolves with device time once the device has run it. */
  endOp?(): Promise<{ gpuMs?: number }>;
  /** Waits for all queued work and throws the first deferred device error (webgpu). */
  sync?(): Promise<void>;
  /** Fused Adam / AdamW step, in place on p, m and v. */
  adam?(p: Storage, g: Storage, m: Storage, v: Storage, o: AdamStep): void;

  fill(out: Storage, value: number): void;
  /** Strided copy: out[outOffset + sum_i idx_i*outStrides_i] = x[xOffset + sum_i idx_i*xStrides_i] for idx over `shape`. Strides may be 0 (broadcast). */
  copy(x: Storage, xStrides: readonly number[], xOffset: number, out: Storage, outStrides: readonly number[], outOffset: number, shape: readonly number[]): void;
  unary(op: UnaryOp, x: Storage, out: Storage, param: number): void;
  /** out[idx] = a[idx . aStrides] (op) b[idx . bStrides] for idx over outShape (row-major out); zero strides broadcast. */
  binary(op: BinaryOp, a: Storage, aStrides: readonly number[], b: Storage, bStrides: readonly number[], out: Storage, outShape: readonly number[], param: number): void;
  /** out = scale * sum of x (shape `shape`) over `axes` (sorted, unique); out has the kept axes in order. */
  reduceSum(x: Storage, shape: readonly number[], axes: readonly number[], out: Storage, scale: number): void;
  /** out[b] = op(a[b]) @ op(b[b]) with op = transpose when the flag is set; a is [batch, m, k] (or [batch, k, m] transposed), b is [batch, k, n] (or [batch, n, k]). */
  matmul(a: Storage, b: Storage, out: Storage, batch: number, m: number, k: number, n: number, transA: boolean, transB: boolean): KernelNote;
  conv2d(x: Storage, w: Storage, bias: Storage | null, out: Storage, g: Conv2dGeometry): KernelNote;
  /** dx = d(conv2d)/dx applied to dy: the transposed convolution of dy with w. */
  conv2dGradInput(dy: Storage, w: Storage, dx: Storage, g: Conv2dGeometry): KernelNote;
  /** dw[o,c,ky,kx] = sum_{n,oy,ox} dy[n,o,oy,ox] * x[n,c,oy*sh-pt+ky,ox*sw-pl+kx]. */
  conv2dGradWeight(x: Storage, dy: Storage, dw: Storage, g: Conv2dGeometry): KernelNote;
  /** out[n,c,y,x] = x[n,c,floor(y/scaleH),floor(x/scaleW)]. */
  upsampleNearest2d(x: Storage, out: Storage, n: number, c: number, h: number, w: number, scaleH: number, scaleW: number): void;
  /** dx[n,c,y,x] = sum over the scaleH x scaleW block of dy that (y,x) was copied to. */
  upsampleNearest2dGrad(dy: Storage, dx: Storage, n: number, c: number, h: number, w: number, scaleH: number, scaleW: number): void;
  /**
   * y = gamma * (x - mean) * invStd + beta per channel. Training: mean/var over (N,H,W) of x (biased var in invStd);
   * runningMean/runningVar (if given) are updated in place: r = (1-momentum) r + momentum * stat, with the unbiased variance.
   * Eval: mean = runningMean, invStd = 1/sqrt(runningVar + eps). saveMean/saveInvStd receive the statistics used.
   */
  batchNorm2d(x: Storage, gamma: Storage, beta: Storage, runningMean: Storage | null, runningVar: Storage | null,
    y: Storage, saveMean: Storage, saveInvStd: Storage, p: BatchNorm2dParams): void;
  /** Gradients of batchNorm2d with respect to x, gamma and beta, from the saved statistics. */
  batchNorm2dGrad(dy: Storage, x: Storage, gamma: Storage, saveMean: Storage, saveInvStd: Storage,
    dx: Storage, dgamma: Storage, dbeta: Storage, p: BatchNorm2dParams): void;
  /** out[0] = mean((a - b)^2). */
  mseLoss(a: Storage, b: Storage, out: Storage, size: number): void;
}
