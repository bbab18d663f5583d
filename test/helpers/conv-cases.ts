/**
 * Convolution cases drawn by fast-check, shared by the tests that need them:
 *   convCaseArb     user-level conv2d arguments (shapes, stride, padding as conv2d takes them), for op-level tests;
 *   geometryArb     kernel-level geometries (Conv2dGeometry, bottom/right padding implied and possibly negative),
 *                   for the kernel tests of both backends;
 *   convTaps        the plain loop over every (output, input, weight) index triple of a geometry, from which the
 *                   kernel tests build their float64 references of the forward and both gradients.
 */
import fc from 'fast-check';
import type { Conv2dGeometry } from '../../src/engine/backend.js';
import * as sg from '../../src/engine/index.js';

const int = (min: number, max: number): fc.Arbitrary<number> => fc.integer({ min, max });

export interface ConvCase {
  n: number; c: number; o: number; h: number; w: number; kh: number; kw: number;
  stride: number | [number, number]; padding: sg.Padding; g: sg.Conv2dGeometry;
}

function geometry(p: Omit<ConvCase, 'g'>): sg.Conv2dGeometry | null {
  try {
    return sg.conv2dGeometry('test', [p.n, p.c, p.h, p.w], [p.o, p.c, p.kh, p.kw], { stride: p.stride, padding: p.padding });
  } catch {
    return null;
  }
}

/**
 * conv2d arguments: batch 1-3, channels 1-maxChannels, sides 1-16, kernels 1-5, stride 1-3 (one or per axis),
 * padding 'same', 'valid', or explicit (one, per axis, or per side) up to maxPad; cases conv2d rejects are dropped.
 */
export function convCaseArb(o: { maxChannels: number; maxPad: number }): fc.Arbitrary<ConvCase> {
  const pad = int(0, o.maxPad);
  const padding: fc.Arbitrary<sg.Padding> = fc.oneof(
    fc.constant('same' as const), fc.constant('valid' as const), pad, fc.tuple(pad, pad), fc.tuple(pad, pad, pad, pad),
  );
  const stride: fc.Arbitrary<number | [number, number]> = fc.oneof(int(1, 3), fc.tuple(int(1, 3), int(1, 3)));
  return fc.record({
    n: int(1, 3), c: int(1, o.maxChannels), o: int(1, o.maxChannels), h: int(1, 16), w: int(1, 16), kh: int(1, 5), kw: int(1, 5),
    stride, padding,
  }).map((p) => ({ ...p, g: geometry(p) })).filter((p): p is ConvCase => p.g !== null);
}

export const convLabel = (p: ConvCase): string =>
  `x [${p.n},${p.c},${p.h},${p.w}] w [${p.o},${p.c},${p.kh},${p.kw}] stride ${JSON.stringify(p.stride)} padding ${JSON.stringify(p.padding)}`;

/**
 * Kernel geometries: batch 1-3, the given channel and side ranges, kernels 1-5, strides 1-3 per axis, top/left
 * padding 0-maxPad, bottom/right padding -maxPad..maxPad (implied by the output size, which is at least 1).
 * `fixed` pins some of the drawn values (e.g. { kernelW: 5, strideW: 1 }); the output size follows from them.
 */
export function geometryArb(o: {
  maxIn: number; maxOut: number; maxSide: number; maxPad: number;
  fixed?: Partial<Pick<Conv2dGeometry, 'inChannels' | 'outChannels' | 'kernelW' | 'strideW'>>;
}): fc.Arbitrary<Conv2dGeometry> {
  return fc.record({
    batch: int(1, 3), inChannels: int(1, o.maxIn), outChannels: int(1, o.maxOut),
    inHeight: int(1, o.maxSide), inWidth: int(1, o.maxSide), kernelH: int(1, 5), kernelW: int(1, 5),
    strideH: int(1, 3), strideW: int(1, 3),
    padTop: int(0, o.maxPad), padLeft: int(0, o.maxPad), padBottom: int(-o.maxPad, o.maxPad), padRight: int(-o.maxPad, o.maxPad),
  }).map((drawn): Conv2dGeometry => {
    const r = { ...drawn, ...o.fixed };
    return {
      batch: r.batch, inChannels: r.inChannels, inHeight: r.inHeight, inWidth: r.inWidth, outChannels: r.outChannels,
      kernelH: r.kernelH, kernelW: r.kernelW, strideH: r.strideH, strideW: r.strideW, padTop: r.padTop, padLeft: r.padLeft,
      outHeight: Math.max(1, Math.floor((r.inHeight + r.padTop + r.padBottom - r.kernelH) / r.strideH) + 1),
      outWidth: Math.max(1, Math.floor((r.inWidth + r.padLeft + r.padRight - r.kernelW) / r.strideW) + 1),
    };
  });
}

/** The element counts of x, w and y (= dy) for a geometry. */
export const convSizes = (g: Conv2dGeometry): { x: number; w: number; y: number } => ({
  x: g.batch * g.inChannels * g.inHeight * g.inWidth,
  w: g.outChannels * g.inChannels * g.kernelH * g.kernelW,
  y: g.batch * g.outChannels * g.outHeight * g.outWidth,
});

/**
 * Calls tap(yi, xi, wi) for every term y[yi] += x[xi] * w[wi] of the convolution (taps that fall in the padding
 * are skipped). The forward and both gradients are the same sum read three ways:
 *   y[yi] += x[xi] w[wi],   dx[xi] += dy[yi] w[wi],   dw[wi] += dy[yi] x[xi].
 */
export function convTaps(g: Conv2dGeometry, tap: (yi: number, xi: number, wi: number) => void): void {
  const { batch: N, inChannels: C, inHeight: H, inWidth: W, outChannels: O, kernelH: KH, kernelW: KW, outHeight: OH, outWidth: OW } = g;
  for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) for (let oy = 0; oy < OH; oy++) for (let ox = 0; ox < OW; ox++) {
    const yi = ((n * O + o) * OH + oy) * OW + ox;
    for (let c = 0; c < C; c++) for (let ky = 0; ky < KH; ky++) for (let kx = 0; kx < KW; kx++) {
      const iy = oy * g.strideH - g.padTop + ky;
      const ix = ox * g.strideW - g.padLeft + kx;
      if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
      tap(yi, ((n * C + c) * H + iy) * W + ix, ((o * C + c) * KH + ky) * KW + kx);
    }
  }
}
