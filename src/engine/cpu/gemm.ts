/**
 * GEMM: C (+)= A * B on strided float arrays, in plain TypeScript.
 *
 *   A is m x k, B is k x n, C is m x n, with elements addressed by strides:
 *     A(i,p) = a[aOffset + i*aRowStride + p*aColStride]
 *     B(p,j) = b[bOffset + p*bRowStride + j*bColStride]
 *     C(i,j) = c[cOffset + i*cRowStride + j]          (rows of C are contiguous)
 *   so a transposed operand is just the same array with its two strides swapped.
 *
 * How it is made fast (the classic Goto/BLIS structure, scaled down to what a JS engine can use):
 *
 *   1. Blocking. C is computed in blocks of MC rows x NC columns. For each block, the k
 *      dimension is walked in steps of KC: the MC x KC slice of A and the KC x NC slice of B are
 *      copied ("packed") into contiguous Float64Arrays small enough to stay in the L2 cache
 *      while they are reused (each packed A value is used NC times, each B value MC times).
 *   2. Packing layout. A is packed in panels of MR rows: for each p in the block, the MR values
 *      A(i..i+MR-1, p) are adjacent. B is packed in panels of NR columns the same way. The
 *      micro-kernel then reads both operands strictly sequentially. Panels at the ragged edges
 *      are padded with zeros so the micro-kernel never needs bounds logic inside its loop.
 *   3. Register blocking. The micro-kernel computes an MR x NR = 8 x 8 tile of C held in 64
 *      local variables: per step of p it loads MR values of A and NR values of B and performs
 *      MR*NR multiply-adds. (See kernel8x8 for why this size.)
 *   4. Doubles everywhere inside. Packing converts float32 or float64 storage to Float64Array,
 *      and the C block is accumulated in a Float64Array too (C itself when it is one, else a
 *      staging copy written back once per block). So the hot loops only ever see Float64Array:
 *      they stay monomorphic (no conversions, and no JIT deoptimisation when a float32 call
 *      follows a float64 one), and the sums are double precision whatever the storage type.
 *
 * This file is single-threaded; multi-threading happens one level up (threads.ts, conv.ts),
 * by giving each thread disjoint rows / images. Scratch buffers are module-level and grow on
 * demand, so each thread (each worker has its own module instance) reuses its own.
 */
import type { FloatArray } from '../dtype.js';

/** Rows of the register tile (micro-kernel height). */
export const MR = 8;
/** Columns of the register tile (micro-kernel width). */
export const NR = 8;
/** Depth of a packed block (the k extent of packed A and B panels). */
const KC = 256;
/** Rows of a C block (packed A: MC x KC doubles = 256 KiB). */
const MC = 128;
/** Columns of a C block (packed B: KC x NC doubles = 1 MiB; staged C: MC x NC doubles = 512 KiB). */
const NC = 512;

/** Products with fewer multiply-adds than this skip packing and use plain loops (gemmSmall). */
const SMALL_GEMM = 4096;

// Scratch, grown on demand and reused across calls.
let packedA = new Float64Array(MR * KC);
let packedB = new Float64Array(KC * NR);
/** Float64 copy of one C block, used when C is not itself a Float64Array. */
let stagedC = new Float64Array(MR * NR);
/** Row accumulator of gemmSmall. */
let smallRow = new Float64Array(0);
/** Holds one register tile when it must be written back partially (ragged edges). */
const edgeTile = new Float64Array(MR * NR);

/**
 * C (+)= A * B, see the header for the addressing. With accumulate = false, C is overwritten
 * (its previous contents, even NaN, never leak into the result); with true, the product is added.
 */
export function gemm(
  m: number, n: number, k: number,
  a: FloatArray, aOffset: number, aRowStride: number, aColStride: number,
  b: FloatArray, bOffset: number, bRowStride: number, bColStride: number,
  c: FloatArray, cOffset: number, cRowStride: number,
  accumulate: boolean,
): void {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || m * n * k < SMALL_GEMM || 2 * m < MR || 2 * n < NR) {
    gemmSmall(m, n, k, a, aOffset, aRowStride, aColStride, b, bOffset, bRowStride, bColStride, c, cOffset, cRowStride, accumulate);
    return;
  }

  for (let jc = 0; jc < n; jc += NC) {
    const nc = Math.min(NC, n - jc);
    for (let ic = 0; ic < m; ic += MC) {
      const mc = Math.min(MC, m - ic);
      // The block C[ic.., jc..] is accumulated in a Float64Array t at t[tOffset + i*ldt + j]:
      // C itself when it is one, otherwise the staging copy. It starts as C (accumulate) or 0.
      const cBlock = cOffset + ic * cRowStride + jc;
      let t: Float64Array, tOffset: number, ldt: number;
      if (c instanceof Float64Array) {
        t = c; tOffset = cBlock; ldt = cRowStride;
        if (!accumulate) for (let i = 0; i < mc; i++) t.fill(0, tOffset + i * ldt, tOffset + i * ldt + nc);
      } else {
        if (stagedC.length < mc * nc) stagedC = new Float64Array(MC * NC);
        t = stagedC; tOffset = 0; ldt = nc;
        if (accumulate) copyBlock(c, cBlock, cRowStride, t, 0, nc, mc, nc);
        else t.fill(0, 0, mc * nc);
      }

      for (let pc = 0; pc < k; pc += KC) {
        const kc = Math.min(KC, k - pc);
        packA(mc, kc, a, aOffset + ic * aRowStride + pc * aColStride, aRowStride, aColStride);
        packB(kc, nc, b, bOffset + pc * bRowStride + jc * bColStride, bRowStride, bColStride);
        const ap = packedA;
        const bp = packedB;
        // Walk the tiles: for each NR-wide panel of B (kept hot in L1), sweep all MR-high panels of A.
        for (let jr = 0; jr < nc; jr += NR) {
          const nr = Math.min(NR, nc - jr);
          for (let ir = 0; ir < mc; ir += MR) {
            const mr = Math.min(MR, mc - ir);
            const tIndex = tOffset + ir * ldt + jr;
            if (mr === MR && nr === NR) kernel8x8(kc, ap, ir * kc, bp, jr * kc, t, tIndex, ldt);
            else kernelEdge(kc, ap, ir * kc, bp, jr * kc, t, tIndex, ldt, mr, nr);
          }
        }
      }

      if (t !== c) copyBlock(t, 0, nc, c, cBlock, cRowStride, mc, nc);
    }
  }
}

/** dst[dstOffset + i*dstStride + j] = src[srcOffset + i*srcStride + j] for an rows x cols block. */
function copyBlock(src: FloatArray, srcOffset: number, srcStride: number, dst: FloatArray, dstOffset: number, dstStride: number, rows: number, cols: number): void {
  for (let i = 0; i < rows; i++) {
    const s = srcOffset + i * srcStride;
    const d = dstOffset + i * dstStride;
    for (let j = 0; j < cols; j++) dst[d + j] = src[s + j];
  }
}

/**
 * Pack the mc x kc block of A starting at `base` into packedA: panel r (rows r*MR..r*MR+MR-1)
 * occupies packedA[r*MR*kc .. (r+1)*MR*kc), with the MR values of column p adjacent.
 * Rows past mc are zero.
 */
function packA(mc: number, kc: number, a: FloatArray, base: number, rowStride: number, colStride: number): void {
  const panels = Math.ceil(mc / MR);
  const needed = panels * MR * kc;
  if (packedA.length < needed) packedA = new Float64Array(needed);
  const ap = packedA;
  for (let r = 0; r < panels; r++) {
    const i0 = r * MR;
    const rows = Math.min(MR, mc - i0);
    const dst = r * MR * kc;
    if (colStride <= rowStride) {
      // Rows of A are (nearly) contiguous: read each row along p, scatter with step MR.
      for (let ii = 0; ii < rows; ii++) {
        let src = base + (i0 + ii) * rowStride;
        let d = dst + ii;
        for (let p = 0; p < kc; p++) {
          ap[d] = a[src];
          src += colStride;
          d += MR;
        }
      }
    } else {
      // Columns of A are contiguous (transposed A): read the MR rows of each column together.
      for (let p = 0; p < kc; p++) {
        let src = base + p * colStride + i0 * rowStride;
        const d = dst + p * MR;
        for (let ii = 0; ii < rows; ii++) {
          ap[d + ii] = a[src];
          src += rowStride;
        }
      }
    }
    // Zero padding of a ragged last panel.
    for (let ii = rows; ii < MR; ii++) {
      for (let p = 0; p < kc; p++) ap[dst + p * MR + ii] = 0;
    }
  }
}

/**
 * Pack the kc x nc block of B starting at `base` into packedB: panel s (columns s*NR..s*NR+NR-1)
 * occupies packedB[s*NR*kc .. (s+1)*NR*kc), with the NR values of row p adjacent.
 * Columns past nc are zero.
 */
function packB(kc: number, nc: number, b: FloatArray, base: number, rowStride: number, colStride: number): void {
  const panels = Math.ceil(nc / NR);
  const needed = panels * NR * kc;
  if (packedB.length < needed) packedB = new Float64Array(needed);
  const bp = packedB;
  for (let s = 0; s < panels; s++) {
    const j0 = s * NR;
    const cols = Math.min(NR, nc - j0);
    const dst = s * NR * kc;
    if (cols === NR && colStride === 1) {
      // The common case (row-major B): NR adjacent values per row.
      let src = base + j0;
      let d = dst;
      for (let p = 0; p < kc; p++) {
        for (let jj = 0; jj < NR; jj++) bp[d + jj] = b[src + jj];
        src += rowStride;
        d += NR;
      }
    } else if (colStride <= rowStride) {
      for (let p = 0; p < kc; p++) {
        let src = base + p * rowStride + j0 * colStride;
        const d = dst + p * NR;
        for (let jj = 0; jj < cols; jj++) {
          bp[d + jj] = b[src];
          src += colStride;
        }
      }
    } else {
      // Columns of B are contiguous (transposed B): read each column along p.
      for (let jj = 0; jj < cols; jj++) {
        let src = base + (j0 + jj) * colStride;
        let d = dst + jj;
        for (let p = 0; p < kc; p++) {
          bp[d] = b[src];
          src += rowStride;
          d += NR;
        }
      }
    }
    for (let jj = cols; jj < NR; jj++) {
      for (let p = 0; p < kc; p++) bp[dst + p * NR + jj] = 0;
    }
  }
}

/**
 * The register-blocked micro-kernel: the 8x8 tile C[i..i+7, j..j+7] += Apanel * Bpanel over kc
 * steps, with ap[aIndex + 8p + r] = A(i+r, p) and bp[bIndex + 8p + s] = B(p, j+s).
 * The 64 sums live in locals c<r><s>; each step is 16 loads and 64 multiply-adds.
 *
 * 64 accumulators are more than the CPU has registers, so the JIT keeps some on the stack, yet
 * 8x8 measured fastest (about 10% over 4x4, ahead of 4x8, 8x4, 4x12, 8x12, 12x8, 16x4, 4x16,
 * 16x8, 8x16, 6x8 and 8x6): in JS every array load also pays a bounds check, so loads per
 * multiply-add (here 1/4) matter more than register pressure.
 */
function kernel8x8(
  kc: number, ap: Float64Array, aIndex: number, bp: Float64Array, bIndex: number,
  c: Float64Array, cIndex: number, ldc: number,
): void {
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c04 = 0, c05 = 0, c06 = 0, c07 = 0;
  let c10 = 0, c11 = 0, c12 = 0, c13 = 0, c14 = 0, c15 = 0, c16 = 0, c17 = 0;
  let c20 = 0, c21 = 0, c22 = 0, c23 = 0, c24 = 0, c25 = 0, c26 = 0, c27 = 0;
  let c30 = 0, c31 = 0, c32 = 0, c33 = 0, c34 = 0, c35 = 0, c36 = 0, c37 = 0;
  let c40 = 0, c41 = 0, c42 = 0, c43 = 0, c44 = 0, c45 = 0, c46 = 0, c47 = 0;
  let c50 = 0, c51 = 0, c52 = 0, c53 = 0, c54 = 0, c55 = 0, c56 = 0, c57 = 0;
  let c60 = 0, c61 = 0, c62 = 0, c63 = 0, c64 = 0, c65 = 0, c66 = 0, c67 = 0;
  let c70 = 0, c71 = 0, c72 = 0, c73 = 0, c74 = 0, c75 = 0, c76 = 0, c77 = 0;
  let ai = aIndex;
  let bi = bIndex;
  for (let p = 0; p < kc; p++) {
    const a0 = ap[ai], a1 = ap[ai + 1], a2 = ap[ai + 2], a3 = ap[ai + 3];
    const a4 = ap[ai + 4], a5 = ap[ai + 5], a6 = ap[ai + 6], a7 = ap[ai + 7];
    const b0 = bp[bi], b1 = bp[bi + 1], b2 = bp[bi + 2], b3 = bp[bi + 3];
    const b4 = bp[bi + 4], b5 = bp[bi + 5], b6 = bp[bi + 6], b7 = bp[bi + 7];
    c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3; c04 += a0 * b4; c05 += a0 * b5; c06 += a0 * b6; c07 += a0 * b7;
    c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3; c14 += a1 * b4; c15 += a1 * b5; c16 += a1 * b6; c17 += a1 * b7;
    c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3; c24 += a2 * b4; c25 += a2 * b5; c26 += a2 * b6; c27 += a2 * b7;
    c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3; c34 += a3 * b4; c35 += a3 * b5; c36 += a3 * b6; c37 += a3 * b7;
    c40 += a4 * b0; c41 += a4 * b1; c42 += a4 * b2; c43 += a4 * b3; c44 += a4 * b4; c45 += a4 * b5; c46 += a4 * b6; c47 += a4 * b7;
    c50 += a5 * b0; c51 += a5 * b1; c52 += a5 * b2; c53 += a5 * b3; c54 += a5 * b4; c55 += a5 * b5; c56 += a5 * b6; c57 += a5 * b7;
    c60 += a6 * b0; c61 += a6 * b1; c62 += a6 * b2; c63 += a6 * b3; c64 += a6 * b4; c65 += a6 * b5; c66 += a6 * b6; c67 += a6 * b7;
    c70 += a7 * b0; c71 += a7 * b1; c72 += a7 * b2; c73 += a7 * b3; c74 += a7 * b4; c75 += a7 * b5; c76 += a7 * b6; c77 += a7 * b7;
    ai += 8;
    bi += 8;
  }
  let r: number;
  r = cIndex + 0 * ldc; c[r] += c00; c[r + 1] += c01; c[r + 2] += c02; c[r + 3] += c03; c[r + 4] += c04; c[r + 5] += c05; c[r + 6] += c06; c[r + 7] += c07;
  r = cIndex + 1 * ldc; c[r] += c10; c[r + 1] += c11; c[r + 2] += c12; c[r + 3] += c13; c[r + 4] += c14; c[r + 5] += c15; c[r + 6] += c16; c[r + 7] += c17;
  r = cIndex + 2 * ldc; c[r] += c20; c[r + 1] += c21; c[r + 2] += c22; c[r + 3] += c23; c[r + 4] += c24; c[r + 5] += c25; c[r + 6] += c26; c[r + 7] += c27;
  r = cIndex + 3 * ldc; c[r] += c30; c[r + 1] += c31; c[r + 2] += c32; c[r + 3] += c33; c[r + 4] += c34; c[r + 5] += c35; c[r + 6] += c36; c[r + 7] += c37;
  r = cIndex + 4 * ldc; c[r] += c40; c[r + 1] += c41; c[r + 2] += c42; c[r + 3] += c43; c[r + 4] += c44; c[r + 5] += c45; c[r + 6] += c46; c[r + 7] += c47;
  r = cIndex + 5 * ldc; c[r] += c50; c[r + 1] += c51; c[r + 2] += c52; c[r + 3] += c53; c[r + 4] += c54; c[r + 5] += c55; c[r + 6] += c56; c[r + 7] += c57;
  r = cIndex + 6 * ldc; c[r] += c60; c[r + 1] += c61; c[r + 2] += c62; c[r + 3] += c63; c[r + 4] += c64; c[r + 5] += c65; c[r + 6] += c66; c[r + 7] += c67;
  r = cIndex + 7 * ldc; c[r] += c70; c[r + 1] += c71; c[r + 2] += c72; c[r + 3] += c73; c[r + 4] += c74; c[r + 5] += c75; c[r + 6] += c76; c[r + 7] += c77;
}

/**
 * A ragged tile at the bottom/right edge of C, of which only mr x nr exist. The packed panels are
 * zero-padded, so the full tile is computed into edgeTile and only its valid part added to C.
 */
function kernelEdge(
  kc: number, ap: Float64Array, aIndex: number, bp: Float64Array, bIndex: number,
  c: Float64Array, cIndex: number, ldc: number, mr: number, nr: number,
): void {
  const t = edgeTile;
  t.fill(0);
  kernel8x8(kc, ap, aIndex, bp, bIndex, t, 0, NR);
  for (let i = 0; i < mr; i++) {
    const row = cIndex + i * ldc;
    for (let j = 0; j < nr; j++) c[row + j] += t[i * NR + j];
  }
}

/**
 * Plain loops for tiny products, k = 0, and thin ones (fewer than MR/2 rows or NR/2 columns, e.g.
 * a matrix-vector product), where packing and 8x8 tiles would cost more than they save. Sums are
 * kept in doubles. The loop order follows B's layout so that B is read along its contiguous axis.
 */
function gemmSmall(
  m: number, n: number, k: number,
  a: FloatArray, aOffset: number, aRowStride: number, aColStride: number,
  b: FloatArray, bOffset: number, bRowStride: number, bColStride: number,
  c: FloatArray, cOffset: number, cRowStride: number,
  accumulate: boolean,
): void {
  if (bColStride === 1 && n > 1) {
    // Rows of B are contiguous: C(i, :) = sum_p A(i, p) * B(p, :), accumulated in a double row.
    if (smallRow.length < n) smallRow = new Float64Array(n);
    const row = smallRow;
    for (let i = 0; i < m; i++) {
      row.fill(0, 0, n);
      for (let p = 0; p < k; p++) {
        const av = a[aOffset + i * aRowStride + p * aColStride];
        const bRow = bOffset + p * bRowStride;
        for (let j = 0; j < n; j++) row[j] += av * b[bRow + j];
      }
      const cRow = cOffset + i * cRowStride;
      // (Written so the addition always runs: a JIT-friendly select that never adds an old NaN.)
      for (let j = 0; j < n; j++) c[cRow + j] = row[j] + (accumulate ? c[cRow + j] : 0);
    }
    return;
  }
  // Otherwise one dot product per element of C.
  for (let i = 0; i < m; i++) {
    const aRow = aOffset + i * aRowStride;
    const cRow = cOffset + i * cRowStride;
    for (let j = 0; j < n; j++) {
      let sum = 0;
      let ai = aRow;
      let bi = bOffset + j * bColStride;
      for (let p = 0; p < k; p++) {
        sum += a[ai] * b[bi];
        ai += aColStride;
        bi += bRowStride;
      }
      c[cRow + j] = sum + (accumulate ? c[cRow + j] : 0);
    }
  }
}
