/**
 * CPU convolution and batched matmul kernels: im2col + GEMM, spread over worker threads.
 *
 * Convolution (NCHW, weight [O, C, KH, KW], geometry in backend.ts's Conv2dGeometry) is turned into
 * matrix products by "im2col": for one image, the column matrix cols[C*KH*KW, OH*OW] holds in
 * column (oy, ox) every input value the kernel window at (oy, ox) touches,
 *     cols[(c*KH + ky)*KW + kx, oy*OW + ox] = x[c, oy*SH - padTop + ky, ox*SW - padLeft + kx]  (0 outside),
 * so that, with W viewed as a matrix [O, C*KH*KW]:
 *     forward        out_n  = W x cols_n              (+ bias per output channel)
 *     input grad     cols   = W^T x dy_n,  then "col2im": scatter-add each column entry back to the
 *                    input position it was copied from (dx zeroed first)
 *     weight grad    dw     = sum_n dy_n x cols_n^T
 * The products run in gemm.ts. To keep the column matrix in cache (and its memory small), each
 * image is processed in chunks of whole output rows: a chunk is cols restricted to the columns
 * of output rows [oy0, oy0 + rows), which is again a plain matrix. Images small enough go the
 * other way: several side by side in one column matrix, so one product serves them all (chunking).
 * Convolutions with few channels on a side skip im2col and run on conv-direct.ts instead (usesDirectConv).
 *
 * Threads (threads.ts): a kernel is cut into parts that write disjoint outputs:
 *   forward       the units of chunking (an image's row chunk, or a group of images), split into
 *                 contiguous ranges (direct: (image, output channel) units);
 *   input grad    whole images (or, for a single image with 2 or more input channels, ranges of
 *                 input channels; direct: (image, input channel) units);
 *   weight grad   the units of chunking (direct: (image, input channel)); each thread sums its
 *                 units into a private partial dw (float64), and the calling thread adds them up;
 *   matmul        ranges of output rows of the stacked [batch*m, n] result (or of columns, for
 *                 a matrix-vector product).
 * Parts go to workers only when the arrays they write are SharedArrayBuffer-backed, the arrays
 * they read are shared or small (then copied), and the work is large enough (threads.ts,
 * planThreads); otherwise everything runs on the calling thread.
 *
 * All outputs are fully overwritten. Scratch buffers are module-level and grow on demand; each
 * worker thread has its own module instance and therefore its own scratch.
 */
import type { Conv2dGeometry } from '../backend.js';
import type { FloatArray } from '../dtype.js';
import { conv2dForwardDirectRange, conv2dGradInputDirectRange, conv2dGradWeightDirectRange, hasFastRows } from './conv-direct.js';
import { binaryKernel, copyKernel, unaryKernel } from './elementwise.js';
import { gemm, MR, NR } from './gemm.js';
import { getThreadCount, planThreads, runParallel, type WorkerTask } from './threads.js';

/**
 * Largest in x out channel count for the direct kernels' fast rows. Timed on this project's 2-core Xeon, one thread,
 * 5x5 stride-1 convolutions (bench/results/README.md, "CPU kernels for few channels"): direct 1.5-7x faster than
 * im2col + GEMM up to 16 x 16 channels on 64x64 images (the input gradient about even at 16 x 16), about even (GEMM
 * up to 1.25x faster) at 16 x 32 and 32 x 32 on 32x32 images, GEMM up to 1.3x faster at 64 x 64 on 16x16 images.
 */
const DIRECT_MAX_CHANNEL_PRODUCT = 256;

/** Target size of one column-matrix chunk, in elements (1 MiB of doubles: stays in L2). */
const COLS_CHUNK_ELEMENTS = 1 << 17;

// Per-thread scratch, grown on demand.
let colsScratch = new Float64Array(0);
let dwScratch = new Float64Array(0);
let channelScratch = new Float64Array(0);
/** Per-thread partial weight gradients for the threaded weight gradient (calling thread only; made on first use:
 *  a browser page that is not cross-origin isolated has no SharedArrayBuffer, and no worker threads either). */
let dwPartials: Float64Array<ArrayBufferLike> = new Float64Array(0);

function cols(size: number): Float64Array {
  if (colsScratch.length < size) colsScratch = new Float64Array(size);
  return colsScratch;
}

/** Scratch for a [channels, width] product operand (gatherChannels, scatterChannels). */
function channelRows(size: number): Float64Array {
  if (channelScratch.length < size) channelScratch = new Float64Array(size);
  return channelScratch;
}

// ---------------------------------------------------------------------------------------------
// Public kernels
// ---------------------------------------------------------------------------------------------

/** out[n,o,oy,ox] = bias[o] + sum_{c,ky,kx} x[n,c,iy,ix] * w[o,c,ky,kx], iy = oy*SH - padTop + ky (0 outside). */
export function conv2dForward(x: FloatArray, w: FloatArray, bias: FloatArray | null, out: FloatArray, g: Conv2dGeometry): string {
  const direct = usesDirectConv(g);
  const units = direct ? g.batch * g.outChannels : chunking(g).units;
  const threads = planThreads([x, w, bias], [out], convFlops(g), units);
  const parts = splitEvenly(units, threads);
  const kernel = direct ? 'conv2dForwardDirectRange' : 'conv2dForwardRange';
  runParallel(
    parts.slice(1).map(([u0, u1]) => task(kernel, x, w, bias, out, g, u0, u1)),
    () => workerKernels[kernel](x, w, bias, out, g, parts[0][0], parts[0][1]),
  );
  return convNote(g, threads);
}

/** dx = gradient of conv2dForward's output with respect to x, for output gradient dy (the transposed convolution). */
export function conv2dGradInput(dy: FloatArray, w: FloatArray, dx: FloatArray, g: Conv2dGeometry): string {
  if (usesDirectConv(g)) {
    // (image, input channel) units.
    const units = g.batch * g.inChannels;
    const parts = splitEvenly(units, planThreads([dy, w], [dx], convFlops(g), units));
    runParallel(
      parts.slice(1).map(([u0, u1]) => task('conv2dGradInputDirectRange', dy, w, dx, g, u0, u1)),
      () => conv2dGradInputDirectRange(dy, w, dx, g, parts[0][0], parts[0][1]),
    );
    return convNote(g, parts.length);
  }
  // Whole images per thread; with a single image (and 2 or more input channels), split the input channels
  // instead (each input channel's dx only depends on its own slice of W).
  const byImage = g.batch >= 2 || g.inChannels < 2;
  const threads = planThreads([dy, w], [dx], convFlops(g), byImage ? g.batch : g.inChannels);
  const parts = splitEvenly(byImage ? g.batch : g.inChannels, threads);
  const range = (i: number): [number, number, number, number] => byImage
    ? [parts[i][0], parts[i][1], 0, g.inChannels]
    : [0, g.batch, parts[i][0], parts[i][1]];
  runParallel(
    parts.slice(1).map((_, i) => task('conv2dGradInputRange', dy, w, dx, g, ...range(i + 1))),
    () => conv2dGradInputRange(dy, w, dx, g, ...range(0)),
  );
  return convNote(g, threads);
}

/** dw[o,c,ky,kx] = sum_{n,oy,ox} dy[n,o,oy,ox] * x[n,c,oy*SH-padTop+ky,ox*SW-padLeft+kx]. */
export function conv2dGradWeight(x: FloatArray, dy: FloatArray, dw: FloatArray, g: Conv2dGeometry): string {
  const direct = usesDirectConv(g);
  const units = direct ? g.batch * g.inChannels : chunking(g).units;
  const kernel = direct ? 'conv2dGradWeightDirectRange' : 'conv2dGradWeightRange';
  // Only the calling thread writes dw (the workers write dwPartials), so dw need not be shared.
  const threads = planThreads([x, dy], [], convFlops(g), units);
  if (threads === 1) {
    workerKernels[kernel](x, dy, dw, g, 0, units);
    return convNote(g, 1);
  }
  // Each thread writes the sum over its units into its own float64 slice of dwPartials.
  const size = dw.length;
  if (dwPartials.length < threads * size) {
    dwPartials = new Float64Array(new SharedArrayBuffer(threads * size * Float64Array.BYTES_PER_ELEMENT));
  }
  const partials = dwPartials;
  const slice = (t: number): Float64Array => partials.subarray(t * size, (t + 1) * size);
  const parts = splitEvenly(units, threads);
  runParallel(
    parts.slice(1).map(([u0, u1], i) => task(kernel, x, dy, slice(i + 1), g, u0, u1)),
    () => workerKernels[kernel](x, dy, slice(0), g, parts[0][0], parts[0][1]),
  );
  for (let i = 0; i < size; i++) {
    let sum = 0;
    for (let t = 0; t < threads; t++) sum += partials[t * size + i];
    dw[i] = sum;
  }
  return convNote(g, threads);
}

/**
 * The trace's words for how a convolution ran (KernelNote, backend.ts): 'direct, sliding 5-wide rows, 2 threads',
 * 'im2col + GEMM, up to 8 images per product, 1 thread', 'im2col + GEMM, 17 row chunks per image, 2 threads'.
 */
export function convNote(g: Conv2dGeometry, threads: number): string {
  const on = `${threads} thread${threads === 1 ? '' : 's'}`;
  if (usesDirectConv(g)) return `direct, ${hasFastRows(g) ? 'sliding 5-wide rows' : 'plain rows'}, ${on}`;
  const ch = chunking(g);
  const split = ch.images > 1 ? `up to ${ch.images} images per product` : ch.count > 1 ? `${ch.count} row chunks per image` : 'one image per product';
  return `im2col + GEMM, ${split}, ${on}`;
}

/**
 * out[bi] = op(a[bi]) x op(b[bi]) for bi < batch, op = transpose when the flag is set.
 * a is [batch, m, k] ([batch, k, m] with transA), b is [batch, k, n] ([batch, n, k] with transB), out is [batch, m, n].
 */
export function matmul(a: FloatArray, b: FloatArray, out: FloatArray, batch: number, m: number, k: number, n: number, transA: boolean, transB: boolean): string {
  // Parts are ranges of rows of the stacked output [batch*m, n], in multiples of the GEMM tile
  // height; when there are too few rows for that (a matrix-vector product), ranges of columns.
  const rows = batch * m;
  const rowBlocks = Math.ceil(rows / MR);
  const colBlocks = Math.ceil(n / NR);
  const byRows = rowBlocks >= Math.min(getThreadCount(), colBlocks);
  const threads = planThreads([a, b], [out], 2 * rows * k * n, byRows ? rowBlocks : colBlocks);
  // Each part: [row0, row1, col0, col1].
  const parts: [number, number, number, number][] = byRows
    ? splitEvenly(rowBlocks, threads).map(([b0, b1]) => [b0 * MR, Math.min(rows, b1 * MR), 0, n])
    : splitEvenly(colBlocks, threads).map(([b0, b1]) => [0, rows, b0 * NR, Math.min(n, b1 * NR)]);
  runParallel(
    parts.slice(1).map((r) => task('matmulRange', a, b, out, batch, m, k, n, transA, transB, ...r)),
    () => matmulRange(a, b, out, batch, m, k, n, transA, transB, ...parts[0]),
  );
  return `GEMM, ${threads} thread${threads === 1 ? '' : 's'}`;
}

// ---------------------------------------------------------------------------------------------
// Single-threaded parts (run on the calling thread or in a worker)
// ---------------------------------------------------------------------------------------------

/**
 * The GEMM path's work item, unit u of chunking(g).units: images [n0, n1) side by side (several only when each
 * is a single chunk), output rows [oy0, oy0 + rows) of each; `ncols` columns per image, `width` in all.
 */
function unitSpan(g: Conv2dGeometry, ch: Chunking, u: number): { n0: number; n1: number; oy0: number; rows: number; ncols: number; width: number } {
  const n0 = Math.floor(u / ch.count) * ch.images;
  const n1 = Math.min(g.batch, n0 + ch.images);
  const oy0 = (u % ch.count) * ch.rows;
  const rows = Math.min(ch.rows, g.outHeight - oy0);
  const ncols = rows * g.outWidth;
  return { n0, n1, oy0, rows, ncols, width: (n1 - n0) * ncols };
}

/** Forward for units [u0, u1) of chunking(g) (unitSpan). */
export function conv2dForwardRange(x: FloatArray, w: FloatArray, bias: FloatArray | null, out: FloatArray, g: Conv2dGeometry, u0: number, u1: number): void {
  const ch = chunking(g);
  const ckk = g.inChannels * g.kernelH * g.kernelW;
  const O = g.outChannels;
  for (let u = u0; u < u1; u++) {
    const { n0, n1, oy0, rows, ncols, width } = unitSpan(g, ch, u);
    const c = cols(ckk * width);
    for (let n = n0; n < n1; n++) im2col(x, n * g.inChannels * g.inHeight * g.inWidth, g, oy0, rows, c, (n - n0) * ncols, width);
    // t = W x cols (O x width), then out[n, o, chunk] = bias[o] + t[o, image n's columns].
    const t = channelRows(O * width);
    gemm(O, width, ckk,
      w, 0, ckk, 1,
      c, 0, width, 1,
      t, 0, width, false);
    scatterChannels(t, width, out, g, O, n0, n1, oy0, ncols, bias);
  }
}

/** Input gradient for images [n0, n1) and input channels [c0, c1). */
export function conv2dGradInputRange(dy: FloatArray, w: FloatArray, dx: FloatArray, g: Conv2dGeometry, n0: number, n1: number, c0: number, c1: number): void {
  const ch = chunking(g);
  const kk = g.kernelH * g.kernelW;
  const ckk = g.inChannels * kk;
  const inPlane = g.inHeight * g.inWidth;
  const O = g.outChannels;
  const m = (c1 - c0) * kk; // rows of cols for our channels
  for (let n = n0; n < n1; n++) dx.fill(0, n * g.inChannels * inPlane + c0 * inPlane, n * g.inChannels * inPlane + c1 * inPlane);
  if (m === 0) return;
  // Units of chunking(g) restricted to our images: groups of up to ch.images images from n0, or one image's chunks.
  for (let nb = n0; nb < n1; nb += ch.images) {
    const ne = Math.min(n1, nb + ch.images);
    for (let chunk = 0; chunk < ch.count; chunk++) {
      const oy0 = chunk * ch.rows;
      const rows = Math.min(ch.rows, g.outHeight - oy0);
      const ncols = rows * g.outWidth;
      const width = (ne - nb) * ncols;
      const t = gatherChannels(dy, g, O, nb, ne, oy0, ncols);
      const c = cols(m * width);
      // cols[i, j] = sum_o W[o, c0*kk + i] * dy[o, column j]   (A = W^T: row stride 1, column stride ckk)
      gemm(m, width, O,
        w, c0 * kk, 1, ckk,
        t, 0, width, 1,
        c, 0, width, false);
      for (let n = nb; n < ne; n++) col2im(c, (n - nb) * ncols, width, dx, n * g.inChannels * inPlane, g, oy0, rows, c0, c1);
    }
  }
}

/** Weight gradient summed over units [u0, u1) (as in conv2dForwardRange), written (not added) to dwOut. */
export function conv2dGradWeightRange(x: FloatArray, dy: FloatArray, dwOut: FloatArray, g: Conv2dGeometry, u0: number, u1: number): void {
  const ch = chunking(g);
  const ckk = g.inChannels * g.kernelH * g.kernelW;
  const O = g.outChannels;
  const size = O * ckk;
  // Accumulate in doubles whatever the storage type, then store once.
  if (dwScratch.length < size) dwScratch = new Float64Array(size);
  const acc = dwScratch;
  acc.fill(0, 0, size);
  for (let u = u0; u < u1; u++) {
    const { n0, n1, oy0, rows, ncols, width } = unitSpan(g, ch, u);
    const t = gatherChannels(dy, g, O, n0, n1, oy0, ncols);
    const c = cols(ckk * width);
    for (let n = n0; n < n1; n++) im2col(x, n * g.inChannels * g.inHeight * g.inWidth, g, oy0, rows, c, (n - n0) * ncols, width);
    // acc[o, i] += sum_j dy[o, column j] * cols[i, j]   (B = cols^T: row stride 1, column stride width)
    gemm(O, ckk, width,
      t, 0, width, 1,
      c, 0, 1, width,
      acc, 0, ckk, true);
  }
  for (let i = 0; i < size; i++) dwOut[i] = acc[i];
}

/**
 * Gathers rows [oy0, oy0 + ncols/OW) of every channel of images [n0, n1) of a [N, channels, OH, OW] array into
 * channelRows: t[o * width + (n - n0) * ncols + j] (width = (n1 - n0) * ncols), images side by side.
 */
function gatherChannels(a: FloatArray, g: Conv2dGeometry, channels: number, n0: number, n1: number, oy0: number, ncols: number): Float64Array {
  const plane = g.outHeight * g.outWidth;
  const width = (n1 - n0) * ncols;
  const t = channelRows(channels * width);
  for (let n = n0; n < n1; n++) {
    for (let o = 0; o < channels; o++) {
      const src = (n * channels + o) * plane + oy0 * g.outWidth;
      const dst = o * width + (n - n0) * ncols;
      for (let j = 0; j < ncols; j++) t[dst + j] = a[src + j];
    }
  }
  return t;
}

/** The inverse of gatherChannels, adding bias[o] (when given) to channel o. */
function scatterChannels(t: Float64Array, width: number, out: FloatArray, g: Conv2dGeometry, channels: number,
  n0: number, n1: number, oy0: number, ncols: number, bias: FloatArray | null): void {
  const plane = g.outHeight * g.outWidth;
  for (let n = n0; n < n1; n++) {
    for (let o = 0; o < channels; o++) {
      const b = bias === null ? 0 : bias[o];
      const dst = (n * channels + o) * plane + oy0 * g.outWidth;
      const src = o * width + (n - n0) * ncols;
      for (let j = 0; j < ncols; j++) out[dst + j] = t[src + j] + b;
    }
  }
}

/** Rows [r0, r1) and columns [c0, c1) of the stacked [batch*m, n] matmul output. */
export function matmulRange(a: FloatArray, b: FloatArray, out: FloatArray, batch: number, m: number, k: number, n: number,
  transA: boolean, transB: boolean, r0: number, r1: number, c0: number, c1: number): void {
  // Element strides of op(A) = [m, k] and op(B) = [k, n] inside one batch item.
  const aRow = transA ? 1 : k, aCol = transA ? m : 1;
  const bRow = transB ? 1 : n, bCol = transB ? k : 1;
  for (let bi = Math.floor(r0 / Math.max(m, 1)); bi < batch && bi * m < r1; bi++) {
    const i0 = Math.max(r0, bi * m) - bi * m;
    const i1 = Math.min(r1, (bi + 1) * m) - bi * m;
    if (i1 <= i0 || c1 <= c0) continue;
    gemm(i1 - i0, c1 - c0, k,
      a, bi * m * k + i0 * aRow, aRow, aCol,
      b, bi * k * n + c0 * bCol, bRow, bCol,
      out, bi * m * n + i0 * n + c0, n, false);
  }
}

/** The functions a worker may run, by name (worker.ts looks tasks up here). */
export const workerKernels = {
  // The elementwise kernels (elementwise.ts) take an element range; backend.ts splits the large ones.
  unaryKernel,
  binaryKernel,
  copyKernel,
  conv2dForwardRange,
  conv2dGradInputRange,
  conv2dGradWeightRange,
  conv2dForwardDirectRange,
  conv2dGradInputDirectRange,
  conv2dGradWeightDirectRange,
  matmulRange,
};

// ---------------------------------------------------------------------------------------------
// im2col / col2im on a chunk of output rows
// ---------------------------------------------------------------------------------------------

/**
 * Fill c[cOffset + ((ch*KH + ky)*KW + kx) * ldc + r*OW + ox] = x[xBase + ch*H*W + iy*W + ix] for output rows
 * oy0 .. oy0+rows-1, iy = oy*SH - padTop + ky, ix = ox*SW - padLeft + kx, and 0 where (iy, ix) is outside:
 * one image's columns of a column matrix with rows ldc apart (several images lie side by side).
 */
function im2col(x: FloatArray, xBase: number, g: Conv2dGeometry, oy0: number, rows: number, c: Float64Array, cOffset: number, ldc: number): void {
  const { inHeight: H, inWidth: W, kernelH: KH, kernelW: KW, outWidth: OW, strideH: SH, strideW: SW } = g;
  let d = cOffset; // start of the current row of c
  for (let ch = 0; ch < g.inChannels; ch++) {
    const plane = xBase + ch * H * W;
    for (let ky = 0; ky < KH; ky++) {
      for (let kx = 0; kx < KW; kx++) {
        const [oxLo, oxHi] = validOutputRange(g.padLeft - kx, W, SW, OW);
        for (let r = 0; r < rows; r++) {
          const iy = (oy0 + r) * SH - g.padTop + ky;
          const dst = d + r * OW;
          if (iy < 0 || iy >= H) {
            c.fill(0, dst, dst + OW);
            continue;
          }
          const src = plane + iy * W + kx - g.padLeft; // + ox*SW
          for (let ox = 0; ox < oxLo; ox++) c[dst + ox] = 0;
          for (let ox = oxLo, s = src + oxLo * SW; ox < oxHi; ox++, s += SW) c[dst + ox] = x[s];
          for (let ox = oxHi; ox < OW; ox++) c[dst + ox] = 0;
        }
        d += ldc;
      }
    }
  }
}

/**
 * The inverse scatter of im2col for input channels [c0, c1): dx[dxBase + ch*H*W + iy*W + ix] += c[...]
 * for every in-image position; rows of c (ldc apart, from cOffset) are numbered from channel c0.
 */
function col2im(c: Float64Array, cOffset: number, ldc: number, dx: FloatArray, dxBase: number, g: Conv2dGeometry, oy0: number, rows: number, c0: number, c1: number): void {
  const { inHeight: H, inWidth: W, kernelH: KH, kernelW: KW, outWidth: OW, strideH: SH, strideW: SW } = g;
  let d = cOffset;
  for (let ch = c0; ch < c1; ch++) {
    const plane = dxBase + ch * H * W;
    for (let ky = 0; ky < KH; ky++) {
      for (let kx = 0; kx < KW; kx++) {
        const [oxLo, oxHi] = validOutputRange(g.padLeft - kx, W, SW, OW);
        for (let r = 0; r < rows; r++) {
          const iy = (oy0 + r) * SH - g.padTop + ky;
          if (iy < 0 || iy >= H) continue;
          const src = d + r * OW;
          const dst = plane + iy * W + kx - g.padLeft;
          for (let ox = oxLo, t = dst + oxLo * SW; ox < oxHi; ox++, t += SW) dx[t] += c[src + ox];
        }
        d += ldc;
      }
    }
  }
}

/**
 * The output columns [lo, hi) whose input column ix = ox*stride - shift lies inside [0, size):
 * lo = first ox with ox*stride >= shift, hi = first ox with ox*stride >= shift + size, both clamped to [0, outSize].
 */
function validOutputRange(shift: number, size: number, stride: number, outSize: number): [number, number] {
  const lo = Math.min(outSize, firstMultipleAtLeast(shift, stride));
  const hi = Math.max(lo, Math.min(outSize, firstMultipleAtLeast(shift + size, stride)));
  return [lo, hi];
}

/** The smallest o >= 0 with o * stride >= limit. */
function firstMultipleAtLeast(limit: number, stride: number): number {
  return limit <= 0 ? 0 : Math.ceil(limit / stride);
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/**
 * Whether a convolution runs on the direct kernels (conv-direct.ts) instead of im2col + GEMM: where its
 * rows are the direct kernels' fast case (5 wide, column stride 1: every layer of the paper's networks
 * that has a single channel on one side), when in x out channels are at most DIRECT_MAX_CHANNEL_PRODUCT;
 * otherwise only for one output channel, where the GEMMs are matrix-vector products (or, for the input
 * gradient, have k = 1) and even the plain direct loops are faster.
 */
export function usesDirectConv(g: Conv2dGeometry): boolean {
  if (hasFastRows(g)) return g.inChannels * g.outChannels <= DIRECT_MAX_CHANNEL_PRODUCT;
  return g.outChannels === 1;
}

/**
 * How the GEMM path cuts a convolution into units (each one column matrix and one product):
 *   - an image whose column matrix is at most half of COLS_CHUNK_ELEMENTS shares a product with others:
 *     `images` whole images side by side (count 1, rows = OH). The deep layers of small inputs are like that:
 *     at 64x64 the esann encoder's last output is 1x1, one column per image, so one product per image was a
 *     matrix-vector product that read all of W for a single column;
 *   - otherwise one image per unit, its output rows cut into `count` chunks of `rows` rows, as few as the
 *     size limit allows, of (nearly) equal height.
 * units = ceil(batch / images) * count.
 */
export interface Chunking { images: number; rows: number; count: number; units: number }

export function chunking(g: Conv2dGeometry): Chunking {
  if (g.outHeight <= 0 || g.outWidth <= 0) return { images: 1, rows: 1, count: 0, units: 0 };
  const ckk = Math.max(1, g.inChannels * g.kernelH * g.kernelW);
  const perImage = ckk * g.outHeight * g.outWidth;
  if (g.batch > 1 && 2 * perImage <= COLS_CHUNK_ELEMENTS) {
    // As few groups as fit, of (nearly) equal size.
    const groups = Math.ceil(g.batch / Math.floor(COLS_CHUNK_ELEMENTS / perImage));
    const images = Math.ceil(g.batch / groups);
    return { images, rows: g.outHeight, count: 1, units: Math.ceil(g.batch / images) };
  }
  const maxRows = Math.max(1, Math.min(g.outHeight, Math.floor(COLS_CHUNK_ELEMENTS / (ckk * g.outWidth))));
  const count0 = Math.ceil(g.outHeight / maxRows);
  const rows = Math.ceil(g.outHeight / count0);
  const count = Math.ceil(g.outHeight / rows);
  return { images: 1, rows, count, units: g.batch * count };
}

/** Multiply-adds x 2 of one convolution pass (the same for forward and both gradients). */
function convFlops(g: Conv2dGeometry): number {
  return 2 * g.batch * g.outChannels * g.inChannels * g.kernelH * g.kernelW * g.outHeight * g.outWidth;
}

/** Cut [0, total) into `parts` contiguous ranges whose sizes differ by at most one. */
export function splitEvenly(total: number, parts: number): [number, number][] {
  const ranges: [number, number][] = [];
  for (let i = 0; i < parts; i++) ranges.push([Math.floor((total * i) / parts), Math.floor((total * (i + 1)) / parts)]);
  return ranges;
}

/** A worker task, type-checked against the function it names. */
export function task<K extends keyof typeof workerKernels>(kernel: K, ...args: Parameters<(typeof workerKernels)[K]>): WorkerTask {
  return { kernel, args };
}
