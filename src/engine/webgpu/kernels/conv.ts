/**
 * WebGPU matmul and convolution kernels: one tiled-GEMM scheme in four WGSL files
 * (shaders/matmul.wgsl, conv2d.wgsl, conv2d_grad_input.wgsl, conv2d_grad_weight.wgsl, plus
 * split_k_reduce.wgsl for split-K).
 *
 * Each kernel is C[m][n] = sum_k A[m][k] * B[k][n] computed in BM x BN tiles, BK deep, in workgroup
 * memory, each thread holding a TM x TN block of C in registers (TM and TN 4 or 8). The convolutions are implicit GEMMs
 * (no im2col buffer: the tiles of the column matrix are gathered from the image as they are loaded):
 *   conv2d            M = O, N = batch*OH*OW, K = C*KH*KW
 *   conv2dGradInput   M = C, N = batch*H*W,   K = O*KH*KW, run per stride phase (no wasted products:
 *                     in each phase it is a stride-1 correlation with the phase's kernel taps)
 *   conv2dGradWeight  M = O, N = C*KH*KW,     K = batch*OH*OW
 * Split-K: a launch with few tiles for a large GPU has its K split into chunks whose partial products go to a
 * scratch buffer, which a second pass (split_k_reduce) sums, adding conv2d's bias. The weight gradient (K huge,
 * M x N small) is split for about TARGET_WORKGROUPS workgroups; conv2d and conv2dGradInput only when they have
 * fewer than FEW_WORKGROUPS (deep layers: few pixels, many channels). See convSplit.
 * The tile shape is chosen from M and N (rows from M: small M, flat tiles; columns narrowed to fit N); see
 * chooseTiles. On CPU-emulated adapters the shaders' tile loops are kept rolled (override ROLLED): lavapipe
 * compiles the unrolled kernels several times slower (seconds per pipeline), and a GPU wants them unrolled.
 */
import type { Conv2dGeometry } from '../../backend.js';
import { grid1d, type GpuRuntime, type Param } from '../runtime.js';

/** A tile shape: BM x BN outputs per workgroup, BK deep, TM x TN outputs per thread ((BM/TM)*(BN/TN) threads). */
export interface GemmTiles {
  bm: number;
  bn: number;
  bk: number;
  tm: number;
  /**
   * Columns per thread, 4 (when absent) or 8. 8 x 8 outputs per thread read workgroup memory half as often per
   * multiply-add as 8 x 4, and with 256 threads make a 128 x 128 tile (half the global loads per output of
   * 128 x 64). chooseTiles gives 8 where the tile allows it; bench/tiles.ts times 4 and 8 beside the pick.
   */
  tn?: number;
}

/**
 * Extra knobs (tests, tuning): force a tile shape; the K per split (a multiple of bk; K or more: no split);
 * `rolled` keeps the shaders' tile loops rolled (the default on CPU-emulated adapters, where the
 * unrolled kernels take seconds to compile; on a GPU they are unrolled).
 */
export interface ConvOptions {
  tiles?: GemmTiles;
  kChunk?: number;
  rolled?: boolean;
  /**
   * Convolutions: load each step's tiles one step ahead, during the previous step's multiply-adds (the shaders'
   * PREFETCH). Off by default until a GPU run says it pays: bench/tiles.ts times the pick with it.
   */
  prefetch?: boolean;
}

/** The portable workgroup-memory limit (bytes). */
const WORKGROUP_BYTES = 16384;
/** Most vec4 tile slots a thread loads per step (MAX_SLOTS in the shaders). */
const MAX_SLOTS = 4;
/** Workgroups the weight gradient aims for by splitting K: about 4 per SM of a large GPU (132 on an H200). */
const TARGET_WORKGROUPS = 512;
/**
 * conv2d and conv2dGradInput launches with fewer workgroups than this (about 2 per SM of a large GPU) split K to
 * reach it: the deepest encoder layer's forward conv (256 x 1352 outputs at 256x256, batch 8) has 44 tiles of
 * 128 x 64, a third of an H200's 132 SMs. A small GPU is still kept busy by 256 workgroups, and the extra reduce
 * pass reads splits x the output once. Not on CPU-emulated adapters, whose few cores a handful of workgroups
 * fill: there the split only adds work (a 64x64 AESc step on lavapipe took 1.80-2.12 s with it, 1.41-1.56 s
 * without, three interleaved pairs: bench/results/README.md).
 */
const FEW_WORKGROUPS = 256;
/** Fewest BK steps per split. */
const MIN_STEPS_PER_SPLIT = 8;
/** Largest split-K scratch buffer (bytes). */
const MAX_SCRATCH_BYTES = 64 << 20;
/** Fewest threads chooseTiles gives a workgroup: one NVIDIA warp. */
const MIN_THREADS = 32;
/** Most workgroups along one grid dimension (WebGPU's default limit). */
const MAX_GRID_DIM = 65535;

const ceilDiv = (a: number, b: number): number => Math.ceil(a / b);
/** x rounded up to whole tiles of `tile`. */
const roundUp = (x: number, tile: number): number => ceilDiv(x, tile) * tile;

/** chooseTiles' starting shape for each row count (its widest tile of those rows), with 4 columns per thread. */
export const TILE_ROWS: readonly GemmTiles[] = [
  { bm: 4, bn: 512, bk: 4, tm: 4 },
  { bm: 8, bn: 256, bk: 8, tm: 4 },
  { bm: 16, bn: 256, bk: 8, tm: 4 },
  { bm: 32, bn: 128, bk: 16, tm: 4 },
  { bm: 64, bn: 64, bk: 16, tm: 4 },
  { bm: 128, bn: 64, bk: 16, tm: 8 },
];

/**
 * The tile shape for an M x N output (M = output channels, or input channels for the input gradient;
 * N = output pixels, or C*KH*KW for the weight gradient).
 *
 * Rows: the smallest BM of 4, 8, 16, 32, 64 that holds M, else 128 with 8 rows per thread (several row
 * tiles). Every row of a tile costs the same work whether or not it is inside M, so a 1-channel output
 * (the decoder's last convolution, and its weight gradient) on the 16-row tile did 16 times the useful
 * work; on 4 rows it does 4 times.
 * Columns: BN starts at what gives the row count 128-256 threads (wide tiles load less per product);
 * it is halved, down to 32 columns and 32 threads (one NVIDIA warp), until the padding past N is at most
 * an eighth of N, else it takes the width with the least padding. N is small for the weight gradient
 * of a few-channel convolution: the first layer's 1 x 5 x 5 weights are 25 columns, which a 256-column
 * tile computed ten times over (now 32); 400 columns (16 x 5 x 5) take 64-column tiles, not 512, for M of 8 or
 * more (with M <= 4 the 4-row tiles stop at 128 columns, to keep a warp, and 128, 256 and 512 all pad 400 to
 * 512, so the 1 x 400 weight gradient of the decoder's last convolution keeps 512).
 * BK is the starting shape's, which every narrower tile of the same rows also allows.
 * Threads: the tile is then computed by half the threads, each with 8 columns (TN = 8) instead of 4, where that
 * leaves a warp (MIN_THREADS) or more and two thread rows (which the B-tile loads need): twice the multiply-adds
 * per read of workgroup memory. On lavapipe the 64x64 AESc step's convolutions took 1.2x less GPU time so
 * (bench/results/README.md); on a GPU, bench/tiles.ts times both.
 */
export function chooseTiles(m: number, n: number): GemmTiles {
  const t = TILE_ROWS.find((r) => m <= r.bm) ?? TILE_ROWS[TILE_ROWS.length - 1];
  let best = t.bn;
  for (const bn of tileWidths(t)) {
    if (roundUp(n, bn) < roundUp(n, best)) best = bn;
    if (8 * roundUp(n, bn) <= 9 * n) { best = bn; break; }
  }
  const pick = { ...t, bn: best };
  const wide = { ...pick, tn: 8 };
  return threads(wide) >= MIN_THREADS && tilesValid(wide) ? wide : pick;
}

/** t's width and each half of it, down to 32 columns and MIN_THREADS threads: the widths chooseTiles considers. */
export function tileWidths(t: GemmTiles): number[] {
  const widths: number[] = [];
  for (let bn = t.bn; bn >= 32 && threads({ ...t, bn }) >= MIN_THREADS; bn /= 2) widths.push(bn);
  return widths;
}

/** Columns per thread of a tile shape. */
export const tileTn = (t: GemmTiles): number => t.tn ?? 4;

/** Threads per workgroup of a tile shape. */
function threads(t: GemmTiles): number {
  return (t.bm / t.tm) * (t.bn / tileTn(t));
}

/** Whether the shaders' tiling constraints hold for t. */
export function tilesValid(t: GemmTiles): boolean {
  const wg = threads(t);
  const tn = tileTn(t);
  return (t.tm === 4 || t.tm === 8) && (tn === 4 || tn === 8) && t.bm % t.tm === 0 && t.bn % tn === 0 && t.bk >= 1
    && Number.isInteger(wg) && wg >= 1 && wg <= 256
    && wg % (t.bm / 4) === 0 && wg % (t.bn / 4) === 0 && wg % t.bk === 0
    && (t.bk * t.bm) / 4 <= MAX_SLOTS * wg && (t.bk * t.bn) / 4 <= MAX_SLOTS * wg
    && t.bk * (t.bm + t.bn) * 4 <= WORKGROUP_BYTES;
}

/** Throws unless the shaders' tiling constraints hold for t. */
export function checkTiles(t: GemmTiles): void {
  if (!tilesValid(t)) throw new Error(`webgpu: invalid GEMM tiles ${JSON.stringify(t)}`);
}

function tileConstants(rt: GpuRuntime, t: GemmTiles, opts: ConvOptions): Record<string, number> {
  checkTiles(t);
  const rolled = opts.rolled ?? rt.software;
  return { BM: t.bm, BN: t.bn, BK: t.bk, TM: t.tm, TN: tileTn(t), WG: threads(t), ROLLED: rolled ? 1 : 0 };
}

/** A convolution kernel's override constants: the tile's, and PREFETCH. */
function convConstants(rt: GpuRuntime, t: GemmTiles, opts: ConvOptions): Record<string, number> {
  return { ...tileConstants(rt, t, opts), PREFETCH: opts.prefetch ? 1 : 0 };
}

/** The Params fields every tiled shader ends with: BK, A_SLOTS and B_SLOTS as run-time values (for ROLLED). */
function loopParams(t: GemmTiles): Param[] {
  const wg = threads(t);
  return [['u32', t.bk], ['u32', ceilDiv((t.bk * t.bm) / 4, wg)], ['u32', ceilDiv((t.bk * t.bn) / 4, wg)]];
}


/** One workgroup per tile, folded into x/y (the shaders read tile = wid.x + wid.y * nwg.x). */
function tileGrid(tiles: number, z = 1): [number, number, number] {
  const [x, y] = grid1d(tiles, 1);
  return [x, y, z];
}

function geometryParams(g: Conv2dGeometry): Param[] {
  return [
    ['u32', g.batch], ['u32', g.inChannels], ['u32', g.inHeight], ['u32', g.inWidth],
    ['u32', g.outChannels], ['u32', g.kernelH], ['u32', g.kernelW], ['u32', g.outHeight],
    ['u32', g.outWidth], ['u32', g.strideH], ['u32', g.strideW], ['i32', g.padTop],
    ['i32', g.padLeft],
  ];
}

/**
 * out[bi] = op(a[bi]) x op(b[bi]) for bi < batch (op = transpose when the flag is set);
 * a is [batch, m, k] ([batch, k, m] with transA), b is [batch, k, n] ([batch, n, k] with transB), out [batch, m, n].
 */
export function matmul(rt: GpuRuntime, a: GPUBuffer, b: GPUBuffer, out: GPUBuffer, batch: number, m: number, k: number, n: number,
  transA: boolean, transB: boolean, opts: ConvOptions = {}): string | undefined {
  if (batch * m * n === 0) return undefined;
  const t = opts.tiles ?? chooseTiles(m, n);
  const tilesM = ceilDiv(m, t.bm);
  const tilesN = ceilDiv(n, t.bn);
  const tiles = batch * tilesM * tilesN;
  rt.dispatch({
    shader: 'matmul',
    constants: tileConstants(rt, t, opts),
    params: [
      ['u32', m], ['u32', k], ['u32', n],
      ['u32', transA ? 1 : k], ['u32', transA ? m : 1],
      ['u32', transB ? 1 : n], ['u32', transB ? k : 1],
      ['u32', tilesM], ['u32', tilesN], ['u32', tiles], ...loopParams(t),
    ],
    buffers: [a, b, out],
    workgroups: tileGrid(tiles),
  });
  return tileNote('matmul', t, 1, opts);
}

/**
 * The trace's words for a tiled launch (KernelNote, backend.ts), e.g. 'conv2d.wgsl, 128x64 tiles 16 deep,
 * 8x8 per thread (128 threads), K in 6 splits + split_k_reduce' (and ', prefetch' when the tiles are loaded a
 * step ahead).
 */
export function tileNote(shader: string, t: GemmTiles, splits: number, opts: ConvOptions = {}): string {
  return `${shader}.wgsl, ${t.bm}x${t.bn} tiles ${t.bk} deep, ${t.tm}x${tileTn(t)} per thread (${threads(t)} threads)` +
    (splits > 1 ? `, K in ${splits} splits + split_k_reduce` : '') + (opts.prefetch ? ', prefetch' : '');
}

/** The three convolution kernels, by the name of their backend method. */
export type ConvKernel = 'conv2d' | 'conv2dGradInput' | 'conv2dGradWeight';

/**
 * The M x N output a convolution kernel tiles (chooseTiles' arguments) and its depth K: conv2d O x batch*OH*OW,
 * K = C*KH*KW; conv2dGradInput C x the largest stride phase's pixels, batch * ceil(H/SH) * ceil(W/SW), K = that
 * phase's O * ceil(KH/SH) * ceil(KW/SW); conv2dGradWeight O x C*KH*KW, K = batch*OH*OW.
 */
export function convTileProblem(kernel: ConvKernel, g: Conv2dGeometry): { m: number; n: number; k: number } {
  if (kernel === 'conv2d') return { m: g.outChannels, n: g.batch * g.outHeight * g.outWidth, k: g.inChannels * g.kernelH * g.kernelW };
  if (kernel === 'conv2dGradInput') {
    return {
      m: g.inChannels, n: g.batch * ceilDiv(g.inHeight, g.strideH) * ceilDiv(g.inWidth, g.strideW),
      k: g.outChannels * ceilDiv(g.kernelH, g.strideH) * ceilDiv(g.kernelW, g.strideW),
    };
  }
  return { m: g.outChannels, n: g.inChannels * g.kernelH * g.kernelW, k: g.batch * g.outHeight * g.outWidth };
}

/**
 * The multiply-adds a convolution kernel performs with tile shape t, padding included: every tile computes
 * BM x BN outputs BK deep whether or not they lie inside the product (workgroups past a phase's last tile
 * return at once and count nothing). The input gradient sums its stride phases, each a GEMM of its own
 * (C x batch*Hp*Wp x O*KHp*KWp); the weight gradient's split-K chunks are multiples of BK, so they pad K as
 * one GEMM does. `npm run bench:tiles` reports it next to the useful FLOPs.
 */
export function convTileWork(kernel: ConvKernel, g: Conv2dGeometry, t: GemmTiles): number {
  if (kernel !== 'conv2dGradInput') {
    const { m, n, k } = convTileProblem(kernel, g);
    return roundUp(m, t.bm) * roundUp(n, t.bn) * roundUp(k, t.bk);
  }
  // Phase r along one axis: the positions i < size with (i + padBefore) mod stride == r, and the taps k < kernel with k mod stride == r.
  const count = (size: number, first: number, stride: number): number => (first < size ? ceilDiv(size - first, stride) : 0);
  const phases = (size: number, kernel: number, stride: number, padBefore: number): Array<[number, number]> =>
    Array.from({ length: stride }, (_, r) => [count(size, (((r - padBefore) % stride) + stride) % stride, stride), count(kernel, r, stride)]);
  let work = 0;
  for (const [hp, khp] of phases(g.inHeight, g.kernelH, g.strideH, g.padTop)) {
    for (const [wp, kwp] of phases(g.inWidth, g.kernelW, g.strideW, g.padLeft)) {
      const n = g.batch * hp * wp, k = g.outChannels * khp * kwp;
      if (n > 0 && k > 0) work += roundUp(g.inChannels, t.bm) * roundUp(n, t.bn) * roundUp(k, t.bk);
    }
  }
  return work;
}

/** out[b,o,oy,ox] = bias[o] + sum_{c,ky,kx} w[o,c,ky,kx] * x[b,c,oy*SH-PT+ky,ox*SW-PL+kx] (0 outside). */
export function conv2d(rt: GpuRuntime, x: GPUBuffer, w: GPUBuffer, bias: GPUBuffer | null, out: GPUBuffer, g: Conv2dGeometry,
  opts: ConvOptions = {}): string | undefined {
  const { m: M, n: N } = convTileProblem('conv2d', g);
  if (M <= 0 || N <= 0) return undefined;
  const t = opts.tiles ?? chooseTiles(M, N);
  const tilesM = ceilDiv(M, t.bm);
  const tiles = tilesM * ceilDiv(N, t.bn);
  const { kChunk, splits } = convSplit('conv2d', g, t, { kChunk: opts.kChunk, software: rt.software });
  const reduceBias = bias && { bias, inner: g.outHeight * g.outWidth, channels: M };
  splitK(rt, splits, M * N, out, reduceBias, (target) => rt.dispatch({
    shader: 'conv2d',
    constants: convConstants(rt, t, opts),
    params: [...geometryParams(g), ['u32', bias && splits === 1 ? 1 : 0], ['u32', tilesM], ['u32', tiles], ['u32', kChunk], ...loopParams(t)],
    buffers: [x, w, bias ?? rt.dummy(), target],
    workgroups: tileGrid(tiles, splits),
  }));
  return tileNote('conv2d', t, splits, opts);
}

/** dx = the transposed convolution of dy with w (conv2d's input gradient); every element of dx is written. */
export function conv2dGradInput(rt: GpuRuntime, dy: GPUBuffer, w: GPUBuffer, dx: GPUBuffer, g: Conv2dGeometry,
  opts: ConvOptions = {}): string | undefined {
  // N: the largest phase's pixels, ceil(H/SH) x ceil(W/SW) per image.
  const { m: M, n: nMax } = convTileProblem('conv2dGradInput', g);
  if (M <= 0 || nMax <= 0) return undefined;
  const t = opts.tiles ?? chooseTiles(M, nMax);
  const tilesM = ceilDiv(M, t.bm);
  const { kChunk, splits } = convSplit('conv2dGradInput', g, t, { kChunk: opts.kChunk, software: rt.software });
  // z = phase + phases * split; more than a grid's 65535 layers (a stride of 256 x 256 and more) take several
  // dispatches, each from its zBase.
  const layers = g.strideH * g.strideW * splits;
  splitK(rt, splits, g.batch * M * g.inHeight * g.inWidth, dx, null, (target) => {
    for (let zBase = 0; zBase < layers; zBase += MAX_GRID_DIM) {
      rt.dispatch({
        shader: 'conv2d_grad_input',
        constants: convConstants(rt, t, opts),
        params: [...geometryParams(g), ['u32', tilesM], ['u32', kChunk], ...loopParams(t), ['u32', zBase]],
        buffers: [dy, w, target],
        workgroups: tileGrid(tilesM * ceilDiv(nMax, t.bn), Math.min(MAX_GRID_DIM, layers - zBase)),
      });
    }
  });
  return tileNote('conv2d_grad_input', t, splits, opts);
}

/** dw[o,c,ky,kx] = sum_{b,oy,ox} dy[b,o,oy,ox] * x[b,c,oy*SH-PT+ky,ox*SW-PL+kx] (K = batch*OH*OW, split: see convSplit). */
export function conv2dGradWeight(rt: GpuRuntime, x: GPUBuffer, dy: GPUBuffer, dw: GPUBuffer, g: Conv2dGeometry,
  opts: ConvOptions = {}): string | undefined {
  const { m: M, n: N } = convTileProblem('conv2dGradWeight', g);
  if (M <= 0 || N <= 0) return undefined;
  const t = opts.tiles ?? chooseTiles(M, N);
  const tilesM = ceilDiv(M, t.bm);
  const tiles = tilesM * ceilDiv(N, t.bn);
  const { kChunk, splits } = convSplit('conv2dGradWeight', g, t, { kChunk: opts.kChunk, software: rt.software });
  splitK(rt, splits, M * N, dw, null, (target) => rt.dispatch({
    shader: 'conv2d_grad_weight',
    constants: convConstants(rt, t, opts),
    params: [...geometryParams(g), ['u32', tilesM], ['u32', tiles], ['u32', kChunk], ...loopParams(t)],
    buffers: [x, dy, target],
    workgroups: tileGrid(tiles, splits),
  }));
  return tileNote('conv2d_grad_weight', t, splits, opts);
}

/**
 * How a convolution launch with tile shape t splits its K (the largest stride phase's, for the input gradient):
 * the K per split (a multiple of t.bk), the number of splits, the workgroups of the launch (all splits and
 * phases), and K in BK steps. `kChunk` forces the chunk (a positive multiple of t.bk; K or more means one split); else:
 *   - conv2dGradWeight: enough splits for TARGET_WORKGROUPS workgroups;
 *   - conv2d, conv2dGradInput: one split, unless the launch has fewer than FEW_WORKGROUPS workgroups on a
 *     hardware adapter (not `software`), then enough for FEW_WORKGROUPS;
 * each split at least MIN_STEPS_PER_SPLIT BK steps, and the scratch buffer (splits x the output) at most
 * MAX_SCRATCH_BYTES.
 */
export function convSplit(kernel: ConvKernel, g: Conv2dGeometry, t: GemmTiles, o: { kChunk?: number; software?: boolean } = {}):
  { kChunk: number; splits: number; workgroups: number; steps: number } {
  let kChunk = o.kChunk;
  const { m, n, k } = convTileProblem(kernel, g);
  const phases = kernel === 'conv2dGradInput' ? g.strideH * g.strideW : 1;
  const outputSize = kernel === 'conv2dGradInput' ? g.batch * g.inChannels * g.inHeight * g.inWidth : m * n;
  const tiles = ceilDiv(m, t.bm) * ceilDiv(n, t.bn) * phases;
  const steps = Math.max(1, ceilDiv(k, t.bk));
  if (kChunk === undefined) {
    const target = kernel === 'conv2dGradWeight' ? TARGET_WORKGROUPS : o.software ? 1 : FEW_WORKGROUPS;
    let splits = Math.min(ceilDiv(target, tiles), Math.max(1, Math.floor(steps / MIN_STEPS_PER_SPLIT)), Math.max(1, Math.floor(MAX_GRID_DIM / phases)));
    splits = Math.max(1, Math.min(splits, Math.floor(MAX_SCRATCH_BYTES / (outputSize * 4))));
    kChunk = ceilDiv(steps, splits) * t.bk;
  }
  if (!Number.isInteger(kChunk) || kChunk <= 0 || kChunk % t.bk !== 0) {
    throw new Error(`webgpu: ${kernel}: kChunk ${kChunk} is not a positive multiple of BK = ${t.bk}`);
  }
  const splits = Math.max(1, ceilDiv(k, kChunk));
  return { kChunk, splits, workgroups: tiles * splits, steps };
}

/**
 * Runs `launch(target)`: with one split, into `out` itself; with more, into a scratch buffer of `splits` partial
 * outputs of `size` floats each, which split_k_reduce then sums into out, adding `bias` (one value per `inner`
 * consecutive outputs, cycling over `channels`) where given.
 */
function splitK(rt: GpuRuntime, splits: number, size: number, out: GPUBuffer,
  bias: { bias: GPUBuffer; inner: number; channels: number } | null, launch: (target: GPUBuffer) => void): void {
  if (splits === 1) {
    launch(out);
    return;
  }
  const partial = rt.acquire(splits * size * 4);
  launch(partial);
  rt.dispatch({
    shader: 'split_k_reduce',
    params: [['u32', size], ['u32', splits], ['u32', bias ? 1 : 0], ['u32', bias?.inner ?? 1], ['u32', bias?.channels ?? 1]],
    buffers: [partial, bias?.bias ?? rt.dummy(), out],
    workgroups: grid1d(size, 64), // 64 outputs per workgroup (of 256 threads)
  });
  rt.release(partial);
}
