/** The conv shapes the CPU op bench measures, and deterministic inputs shared by skipgrad and tfjs. */
import { Rng } from '../src/engine/random.js';

export interface BenchShape {
  name: string;
  n: number; c: number; h: number; w: number;
  o: number; k: number; stride: number;
  pad: 'same' | 'valid';
}

export type TfjsPass = 'forward' | 'gradInput' | 'gradFull';

export interface TfjsJob {
  backend: 'cpu' | 'wasm' | 'webgpu';
  shape: BenchShape;
  pass: TfjsPass;
  warmup: number;
  reps: number;
  seed: number;
}

export const SHAPES: BenchShape[] = [
  { name: 'AESc l1->l2 [8,16,256,256] -> 32, 5x5 s2 valid', n: 8, c: 16, h: 256, w: 256, o: 32, k: 5, stride: 2, pad: 'valid' },
  { name: '[4,32,128,128] -> 64, 5x5 s2 same', n: 4, c: 32, h: 128, w: 128, o: 64, k: 5, stride: 2, pad: 'same' },
];

export function outSize(s: BenchShape): [number, number] {
  if (s.pad === 'same') return [Math.ceil(s.h / s.stride), Math.ceil(s.w / s.stride)];
  return [Math.floor((s.h - s.k) / s.stride) + 1, Math.floor((s.w - s.k) / s.stride) + 1];
}

export function convFlops(s: BenchShape): number {
  const [oh, ow] = outSize(s);
  return 2 * s.n * s.o * oh * ow * s.c * s.k * s.k;
}

/** Input values in NCHW order (skipgrad's layout). */
export function nchwInput(s: BenchShape, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: s.n * s.c * s.h * s.w }, () => rng.uniform(-1, 1));
}

/** Weight values in OIHW order (skipgrad's layout). */
export function oihwWeight(s: BenchShape, seed: number): Float32Array {
  const rng = new Rng(seed + 1);
  return Float32Array.from({ length: s.o * s.c * s.k * s.k }, () => rng.uniform(-0.1, 0.1));
}

/** The same input values as nchwInput, laid out NHWC for tfjs. */
export function nhwcInput(s: BenchShape, seed: number): Float32Array {
  const src = nchwInput(s, seed);
  const out = new Float32Array(src.length);
  for (let n = 0; n < s.n; n++) for (let c = 0; c < s.c; c++) for (let y = 0; y < s.h; y++) for (let x = 0; x < s.w; x++) {
    out[((n * s.h + y) * s.w + x) * s.c + c] = src[((n * s.c + c) * s.h + y) * s.w + x];
  }
  return out;
}

/** The same weight values as oihwWeight, laid out HWIO for tfjs. */
export function hwioWeight(s: BenchShape, seed: number): Float32Array {
  const src = oihwWeight(s, seed);
  const out = new Float32Array(src.length);
  for (let o = 0; o < s.o; o++) for (let c = 0; c < s.c; c++) for (let y = 0; y < s.k; y++) for (let x = 0; x < s.k; x++) {
    out[((y * s.k + x) * s.c + c) * s.o + o] = src[((o * s.c + c) * s.k + y) * s.k + x];
  }
  return out;
}
