/** Numeric helpers shared by the kernel tests: seeded values and a closeness check that names the worst element. */
import type { FloatArray } from '../../src/engine/dtype.js';

/** Fills `a` with deterministic values in [-1, 1) from `seed` (mulberry32), so a failure replays exactly. */
export function fillSeeded<T extends FloatArray>(a: T, seed: number): T {
  let s = seed >>> 0;
  for (let i = 0; i < a.length; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    a[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return a;
}

/**
 * Throws unless max |got - want| <= tol * max(floor, max |want|) and every element is finite
 * (a NaN, e.g. an output element never written, counts as the worst).
 */
export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string, floor = 1): void {
  if (got.length !== want.length) throw new Error(`${what}: ${got.length} values, expected ${want.length}`);
  let scale = floor;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= worst)) {
      worst = d;
      worstAt = i;
    }
  }
  if (!(worst <= tol * scale)) {
    throw new Error(`${what}: element ${worstAt} is ${got[worstAt]}, expected ${want[worstAt]} (max error ${worst}, allowed ${tol * scale})`);
  }
}
