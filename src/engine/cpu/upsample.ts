/**
 * Nearest-neighbour upsampling by integer factors (NCHW) and its gradient.
 *   forward:  out[n,c,y,x] = in[n,c, floor(y/sh), floor(x/sw)]          out is [N, C, H*sh, W*sw]
 *   backward: dx[n,c,i,j]  = sum_{a<sh, b<sw} dy[n,c, i*sh+a, j*sw+b]
 */
import type { FloatArray } from '../dtype.js';

export function upsampleNearest2dForward(x: FloatArray, out: FloatArray, n: number, c: number, h: number, w: number, sh: number, sw: number): void {
  const oh = h * sh;
  const ow = w * sw;
  for (let p = 0; p < n * c; p++) {
    const xb = p * h * w;
    const ob = p * oh * ow;
    for (let y = 0; y < oh; y++) {
      const xr = xb + Math.floor(y / sh) * w;
      const or = ob + y * ow;
      for (let i = 0; i < w; i++) {
        const v = x[xr + i];
        for (let b = 0; b < sw; b++) out[or + i * sw + b] = v;
      }
    }
  }
}

export function upsampleNearest2dBackward(dy: FloatArray, dx: FloatArray, n: number, c: number, h: number, w: number, sh: number, sw: number): void {
  const oh = h * sh;
  const ow = w * sw;
  for (let p = 0; p < n * c; p++) {
    const xb = p * h * w;
    const ob = p * oh * ow;
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        let s = 0;
        for (let a = 0; a < sh; a++) {
          const r = ob + (i * sh + a) * ow + j * sw;
          for (let b = 0; b < sw; b++) s += dy[r + b];
        }
        dx[xb + i * w + j] = s;
      }
    }
  }
}
