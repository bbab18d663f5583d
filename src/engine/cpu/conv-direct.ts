/**
 * Direct convolution kernels, for convolutions with few channels (conv.ts, usesDirectConv: a kernel 5 wide at
 * column stride 1 when input x output channels are at most 256; any other kernel only with one output channel).
 *
 * im2col + GEMM (conv.ts) copies every input value KH*KW times into the column matrix, then reads each
 * copy once per output channel (forward, weight gradient) or writes it once per input channel (input
 * gradient). With many channels on both sides that copy is cheap next to the products. With one
 * output channel it is not: the forward product is a matrix-vector product that reads the whole column
 * matrix for one multiply-add per value, the weight gradient another, and the input gradient's GEMM
 * has k = 1 and writes as much as it computes, then col2im reads it all back. These kernels read the
 * input in place instead, from one zero-padded copy of the plane they work on; with a sliding window over
 * 5-wide rows they stay ahead of im2col + GEMM up to about 16 x 16 channels.
 *
 * Padded plane: P[r, q] = x[n, c, r - padTop, q - padLeft], 0 outside the image, for r < PH and q < PW
 * with PH = (OH-1)*SH + KH and PW = (OW-1)*SW + KW, so window (oy, ox) reads P[oy*SH + ky, ox*SW + kx].
 *
 *   forward        out[n,o,oy,ox] = bias[o] + sum_{c,ky,kx} w[o,c,ky,kx] * P_{n,c}[oy*SH+ky, ox*SW+kx]
 *   input grad     D_{n,c}[oy*SH+ky, ox*SW+kx] += w[o,c,ky,kx] * dy[n,o,oy,ox], summed over o, oy, ox, ky, kx,
 *                  then dx[n,c,iy,ix] = D_{n,c}[iy+padTop, ix+padLeft] (0 where that is outside D)
 *   weight grad    dw[o,c,ky,kx] = sum_{n,oy,ox} dy[n,o,oy,ox] * P_{n,c}[oy*SH+ky, ox*SW+kx]
 *
 * Work is cut into (image, channel) units: (n, o) for the forward, (n, c) for both gradients, so a
 * unit writes one output plane (forward, input gradient) or adds to its own thread's partial weight
 * gradient. Sums are kept in doubles. The loops walk one output row at a time with the input rows it
 * reads, so both stay in L1.
 */
import type { Conv2dGeometry } from '../backend.js';
import type { FloatArray } from '../dtype.js';

/** Whether g's rows take the fast row loops (a 5-wide kernel at column stride 1); others take plain loops. */
export function hasFastRows(g: Conv2dGeometry): boolean {
  return g.kernelW === 5 && g.strideW === 1;
}

// Per-thread scratch, grown on demand.
let planeScratch = new Float64Array(0);
let accScratch = new Float64Array(0);
/** The dy row copy of the input gradient and weight gradient: KW-1 zeros, OW values, KW-1 zeros. */
let rowScratch = new Float64Array(0);

function grow(a: Float64Array<ArrayBuffer>, size: number): Float64Array<ArrayBuffer> {
  return a.length >= size ? a : new Float64Array(size);
}

/** The padded plane's sides: the extent of input rows / columns the windows read, padding included. */
function paddedSize(g: Conv2dGeometry): { ph: number; pw: number } {
  return { ph: (g.outHeight - 1) * g.strideH + g.kernelH, pw: (g.outWidth - 1) * g.strideW + g.kernelW };
}

/** Fill p[0 .. ph*pw) with the padded copy of the input plane starting at x[base] (header). Padding is never negative. */
function padPlane(x: FloatArray, base: number, g: Conv2dGeometry, p: Float64Array, ph: number, pw: number): void {
  p.fill(0, 0, ph * pw);
  // Rows / columns past the image are 0; so are any it has past the windows' reach (never read).
  const rows = Math.min(ph - g.padTop, g.inHeight), cols = Math.min(pw - g.padLeft, g.inWidth);
  for (let iy = 0; iy < rows; iy++) {
    const src = base + iy * g.inWidth;
    const dst = (iy + g.padTop) * pw + g.padLeft;
    for (let ix = 0; ix < cols; ix++) p[dst + ix] = x[src + ix];
  }
}

/** Forward for units [u0, u1) of (image, output channel) pairs: unit u is image floor(u / O), channel u % O. */
export function conv2dForwardDirectRange(x: FloatArray, w: FloatArray, bias: FloatArray | null, out: FloatArray, g: Conv2dGeometry, u0: number, u1: number): void {
  const { inChannels: C, outChannels: O, kernelH: KH, kernelW: KW, outHeight: OH, outWidth: OW, strideH: SH } = g;
  const { ph, pw } = paddedSize(g);
  const outPlane = OH * OW;
  planeScratch = grow(planeScratch, ph * pw);
  accScratch = grow(accScratch, outPlane);
  const p = planeScratch, acc = accScratch;
  for (let u = u0; u < u1; u++) {
    const n = Math.floor(u / O), o = u % O;
    acc.fill(bias === null ? 0 : bias[o], 0, outPlane);
    for (let c = 0; c < C; c++) {
      padPlane(x, (n * C + c) * g.inHeight * g.inWidth, g, p, ph, pw);
      const wBase = (o * C + c) * KH * KW;
      for (let oy = 0; oy < OH; oy++) {
        for (let ky = 0; ky < KH; ky++) rowForward(acc, oy * OW, p, (oy * SH + ky) * pw, w, wBase + ky * KW, g);
      }
    }
    const dst = (n * O + o) * outPlane;
    for (let i = 0; i < outPlane; i++) out[dst + i] = acc[i];
  }
}

/** Input gradient for units [u0, u1) of (image, input channel) pairs: unit u is image floor(u / C), channel u % C. */
export function conv2dGradInputDirectRange(dy: FloatArray, w: FloatArray, dx: FloatArray, g: Conv2dGeometry, u0: number, u1: number): void {
  const { inChannels: C, outChannels: O, inHeight: H, inWidth: W, kernelH: KH, kernelW: KW, outHeight: OH, outWidth: OW, strideH: SH } = g;
  const { ph, pw } = paddedSize(g);
  const outPlane = OH * OW;
  planeScratch = grow(planeScratch, ph * pw);
  rowScratch = grow(rowScratch, OW + 2 * (KW - 1));
  const d = planeScratch, y = rowScratch;
  y.fill(0);
  for (let u = u0; u < u1; u++) {
    const n = Math.floor(u / C), c = u % C;
    d.fill(0, 0, ph * pw);
    for (let o = 0; o < O; o++) {
      const wBase = (o * C + c) * KH * KW;
      for (let oy = 0; oy < OH; oy++) {
        const src = (n * O + o) * outPlane + oy * OW;
        for (let ox = 0; ox < OW; ox++) y[KW - 1 + ox] = dy[src + ox];
        for (let ky = 0; ky < KH; ky++) rowGradInput(d, (oy * SH + ky) * pw, y, w, wBase + ky * KW, g);
      }
    }
    // Crop: input positions past the padded plane (never read by the forward) get 0.
    const dxBase = (n * C + c) * H * W;
    const rows = Math.min(ph - g.padTop, H), cols = Math.min(pw - g.padLeft, W);
    for (let iy = 0; iy < H; iy++) {
      const dst = dxBase + iy * W;
      const src = (iy + g.padTop) * pw + g.padLeft;
      const valid = iy < rows ? cols : 0;
      for (let ix = 0; ix < valid; ix++) dx[dst + ix] = d[src + ix];
      dx.fill(0, dst + valid, dst + W);
    }
  }
}

/** Weight gradient summed over units [u0, u1) of (image, input channel) pairs (as in the input gradient), written (not added) to dwOut. */
export function conv2dGradWeightDirectRange(x: FloatArray, dy: FloatArray, dwOut: FloatArray, g: Conv2dGeometry, u0: number, u1: number): void {
  const { inChannels: C, outChannels: O, kernelH: KH, kernelW: KW, outHeight: OH, outWidth: OW, strideH: SH } = g;
  const { ph, pw } = paddedSize(g);
  const outPlane = OH * OW;
  const size = O * C * KH * KW;
  planeScratch = grow(planeScratch, ph * pw);
  accScratch = grow(accScratch, size);
  rowScratch = grow(rowScratch, OW + 2 * (KW - 1));
  const p = planeScratch, acc = accScratch, y = rowScratch;
  acc.fill(0, 0, size);
  for (let u = u0; u < u1; u++) {
    const n = Math.floor(u / C), c = u % C;
    padPlane(x, (n * C + c) * g.inHeight * g.inWidth, g, p, ph, pw);
    for (let o = 0; o < O; o++) {
      const wBase = (o * C + c) * KH * KW;
      for (let oy = 0; oy < OH; oy++) {
        const src = (n * O + o) * outPlane + oy * OW;
        for (let ox = 0; ox < OW; ox++) y[ox] = dy[src + ox];
        for (let ky = 0; ky < KH; ky++) rowGradWeight(acc, wBase + ky * KW, p, (oy * SH + ky) * pw, y, g);
      }
    }
  }
  for (let i = 0; i < size; i++) dwOut[i] = acc[i];
}

// ---------------------------------------------------------------------------------------------
// One kernel row against one row: the loops every pass above is made of
// ---------------------------------------------------------------------------------------------
//
// Each comes in two forms: for a 5-wide kernel at column stride 1 (the paper's networks), a sliding
// window that keeps the 5 values it needs in locals, so each step loads one new value for 5
// multiply-adds; otherwise plain loops over kx, which load twice (and store once) per multiply-add.

/** acc[a + ox] += sum_kx w[k + kx] * p[r + ox*SW + kx], for ox < OW. */
function rowForward(acc: Float64Array, a: number, p: Float64Array, r: number, w: FloatArray, k: number, g: Conv2dGeometry): void {
  const { outWidth: OW, kernelW: KW, strideW: SW } = g;
  if (hasFastRows(g)) {
    const w0 = w[k], w1 = w[k + 1], w2 = w[k + 2], w3 = w[k + 3], w4 = w[k + 4];
    let x0 = p[r], x1 = p[r + 1], x2 = p[r + 2], x3 = p[r + 3];
    for (let ox = 0; ox < OW; ox++) {
      const x4 = p[r + ox + 4];
      acc[a + ox] += w0 * x0 + w1 * x1 + w2 * x2 + w3 * x3 + w4 * x4;
      x0 = x1; x1 = x2; x2 = x3; x3 = x4;
    }
    return;
  }
  for (let kx = 0; kx < KW; kx++) {
    const wv = w[k + kx];
    for (let ox = 0, q = r + kx; ox < OW; ox++, q += SW) acc[a + ox] += wv * p[q];
  }
}

/**
 * d[r + ox*SW + kx] += w[k + kx] * y[KW-1 + ox], for ox < OW and kx < KW, where y holds a dy row between KW-1
 * zeros on each side. At stride 1 that is d[r + j] += sum_kx w[k + kx] * y[KW-1 + j - kx] for j < OW + KW - 1:
 * a gather, so each d value is written once.
 */
function rowGradInput(d: Float64Array, r: number, y: Float64Array, w: FloatArray, k: number, g: Conv2dGeometry): void {
  const { outWidth: OW, kernelW: KW, strideW: SW } = g;
  if (hasFastRows(g)) {
    const w0 = w[k], w1 = w[k + 1], w2 = w[k + 2], w3 = w[k + 3], w4 = w[k + 4];
    let y1 = 0, y2 = 0, y3 = 0, y4 = 0; // y[4 + j - kx] for kx = 1..4 (the zeros before the row at j = 0)
    for (let j = 0; j < OW + 4; j++) {
      const y0 = y[4 + j];
      d[r + j] += w0 * y0 + w1 * y1 + w2 * y2 + w3 * y3 + w4 * y4;
      y4 = y3; y3 = y2; y2 = y1; y1 = y0;
    }
    return;
  }
  for (let kx = 0; kx < KW; kx++) {
    const wv = w[k + kx];
    for (let ox = 0, q = r + kx; ox < OW; ox++, q += SW) d[q] += wv * y[KW - 1 + ox];
  }
}

/** acc[k + kx] += sum_ox y[ox] * p[r + ox*SW + kx], for kx < KW (y holds a dy row from index 0). */
function rowGradWeight(acc: Float64Array, k: number, p: Float64Array, r: number, y: Float64Array, g: Conv2dGeometry): void {
  const { outWidth: OW, kernelW: KW, strideW: SW } = g;
  if (hasFastRows(g)) {
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0;
    let x0 = p[r], x1 = p[r + 1], x2 = p[r + 2], x3 = p[r + 3];
    for (let ox = 0; ox < OW; ox++) {
      const x4 = p[r + ox + 4];
      const v = y[ox];
      s0 += v * x0; s1 += v * x1; s2 += v * x2; s3 += v * x3; s4 += v * x4;
      x0 = x1; x1 = x2; x2 = x3; x3 = x4;
    }
    acc[k] += s0; acc[k + 1] += s1; acc[k + 2] += s2; acc[k + 3] += s3; acc[k + 4] += s4;
    return;
  }
  for (let kx = 0; kx < KW; kx++) {
    let s = 0;
    for (let ox = 0, q = r + kx; ox < OW; ox++, q += SW) s += y[ox] * p[q];
    acc[k + kx] += s;
  }
}
