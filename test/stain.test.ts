/**
 * The synthetic stain corruption (src/experiments/stain.ts, docs/reference-facts.md §2), checked by fast-check
 * properties over image sizes (square and not, 9..300 px) and Rng seeds. A failure replays from the seed
 * and path fast-check prints.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { Rng } from '../src/engine/random.js';
import { addStain, stainBounds, type Stain } from '../src/experiments/stain.js';

const RUNS = 150;
const SD = Math.sqrt(0.05 / 255); // the authors' var = 0.05/255

const side = fc.integer({ min: 9, max: 300 });
const seed = fc.integer({ min: 0, max: 0xffffffff });

/** A random image in [0, 1] (its own seed, so it does not share draws with the stain). */
function randomImage(height: number, width: number, s: number): Float32Array {
  const rng = new Rng(s ^ 0x5bd1e995);
  const img = new Float32Array(height * width);
  for (let i = 0; i < img.length; i++) img[i] = rng.next();
  return img;
}

function stainOf(height: number, width: number, s: number): { img: Float32Array; stain: Stain } {
  const img = randomImage(height, width, s);
  return { img, stain: addStain(img, height, width, new Rng(s)) };
}

const bits = (x: Float32Array): Uint32Array => new Uint32Array(x.buffer, x.byteOffset, x.length);
/** Index of the first difference of two arrays, -1 when equal (cheaper than toEqual on big arrays). */
function firstDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) return 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}
const maskCount = (mask: Uint8Array): number => mask.reduce((n, v) => n + v, 0);

describe('stainBounds', () => {
  it('follows §2 step 2 with S = min(height, width)', () => {
    expect(stainBounds(256, 256)).toEqual({ minAxis: 2, maxAxis: 30 });
    expect(stainBounds(9, 9)).toEqual({ minAxis: 1, maxAxis: 1 });
    expect(stainBounds(100, 100)).toEqual({ minAxis: 1, maxAxis: 12 });
    expect(stainBounds(1000, 1000)).toEqual({ minAxis: 10, maxAxis: 120 });
    expect(stainBounds(300, 120)).toEqual({ minAxis: 1, maxAxis: 14 });
    expect(stainBounds(120, 300)).toEqual(stainBounds(120, 120));
    fc.assert(
      fc.property(side, side, (h, w) => {
        const s = Math.min(h, w);
        const { minAxis, maxAxis } = stainBounds(h, w);
        expect(minAxis).toBe(Math.max(Math.floor(s / 100), 1));
        expect(maxAxis).toBe(Math.floor((12 * s) / 100));
        expect(minAxis).toBeLessThanOrEqual(maxAxis);
      }),
    );
  });

  it('rejects images smaller than 9 px on a side, naming the size and the minimum', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 300 }), fc.boolean(), (small, other, flip) => {
        const [h, w] = flip ? [other, small] : [small, other];
        const img = new Float32Array(h * w);
        for (const f of [() => stainBounds(h, w), () => addStain(img, h, w, new Rng(1))]) {
          expect(f).toThrow(RangeError);
          expect(f).toThrow(`${h}x${w}`);
          expect(f).toThrow('at least 9');
        }
      }),
    );
    expect(() => addStain(new Float32Array(81), 9, 9, new Rng(1))).not.toThrow();
    expect(() => addStain(new Float32Array(80), 9, 9, new Rng(1))).toThrow(/80 pixels/);
  });
});

describe('addStain', () => {
  it('draws parameters within §2 bounds and a non-empty mask inside the bounding circle', () => {
    fc.assert(
      fc.property(side, side, seed, (h, w, s) => {
        const { stain } = stainOf(h, w, s);
        const { colour, semiAxes, rotation, centre, jitter } = stain.params;
        const [a, b] = semiAxes;
        const { minAxis, maxAxis } = stainBounds(h, w);
        // 1. colour
        expect(Number.isInteger(colour)).toBe(true);
        expect(colour).toBeGreaterThanOrEqual(10);
        expect(colour).toBeLessThanOrEqual(220);
        // 2. semi-axes
        for (const ax of semiAxes) {
          expect(Number.isInteger(ax)).toBe(true);
          expect(ax).toBeGreaterThanOrEqual(minAxis);
          expect(ax).toBeLessThanOrEqual(maxAxis);
        }
        // 3. rotation
        expect(rotation).toBeGreaterThanOrEqual(0);
        expect(rotation).toBeLessThan(2 * Math.PI);
        // 4. centre with margin m = max(a, b) from every border
        const m = Math.max(a, b);
        const [cr, cc] = centre;
        expect(Number.isInteger(cr) && Number.isInteger(cc)).toBe(true);
        expect(cr).toBeGreaterThanOrEqual(m);
        expect(cr).toBeLessThanOrEqual(h - 1 - m);
        expect(cc).toBeGreaterThanOrEqual(m);
        expect(cc).toBeLessThanOrEqual(w - 1 - m);
        // 6. jitter amplitude
        expect(jitter).toBe(Math.floor((0.1 * (a + b)) / 2 + 1e-9));
        // mask: right size, binary, non-empty, inside the circle that bounds the jittered ellipse.
        // A point moves by up to k in row and in column, i.e. k*sqrt(2) in distance; +1 for the spline
        // and pixel rounding.
        expect(stain.mask.length).toBe(h * w);
        expect(stain.image.length).toBe(h * w);
        expect(maskCount(stain.mask)).toBeGreaterThan(0);
        const radius = m + jitter * Math.SQRT2 + 1;
        for (let i = 0; i < h * w; i++) {
          const v = stain.mask[i];
          if (v !== 0 && v !== 1) expect.fail(`mask[${i}] = ${v} is not 0 or 1`);
          const r = Math.floor(i / w);
          const c = i % w;
          if (v === 1 && Math.hypot(r - cr, c - cc) > radius) {
            expect.fail(`mask pixel (${r}, ${c}) is farther than ${radius} from the centre (${cr}, ${cc})`);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('replaces exactly the mask pixels, with values in [0, 1], and leaves the input alone', () => {
    fc.assert(
      fc.property(side, side, seed, (h, w, s) => {
        const img = randomImage(h, w, s);
        const before = new Uint32Array(bits(img));
        const stain = addStain(img, h, w, new Rng(s));
        expect(firstDiff(bits(img), before)).toBe(-1); // the input is not modified
        expect(stain.image).not.toBe(img);
        const out = bits(stain.image);
        for (let i = 0; i < h * w; i++) {
          if (stain.mask[i] === 0) {
            if (out[i] !== before[i]) expect.fail(`pixel ${i} outside the mask changed`);
          } else {
            const v = stain.image[i];
            if (!(v >= 0 && v <= 1)) expect.fail(`stain pixel ${i} = ${v} outside [0, 1]`);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('gives stain pixels of mean c/255 and sd about 0.014 on big stains', () => {
    let checked = 0;
    fc.assert(
      fc.property(fc.integer({ min: 120, max: 300 }), fc.integer({ min: 120, max: 300 }), seed, (h, w, s) => {
        const { stain } = stainOf(h, w, s);
        const vals: number[] = [];
        stain.mask.forEach((v, i) => {
          if (v === 1) vals.push(stain.image[i]);
        });
        if (vals.length < 200) return;
        checked++;
        const n = vals.length;
        const mean = vals.reduce((p, v) => p + v, 0) / n;
        const sd = Math.sqrt(vals.reduce((p, v) => p + (v - mean) ** 2, 0) / (n - 1));
        expect(Math.abs(mean - stain.params.colour / 255)).toBeLessThan((5 * SD) / Math.sqrt(n) + 1e-4);
        expect(sd).toBeGreaterThan(0.8 * SD);
        expect(sd).toBeLessThan(1.2 * SD);
      }),
      { numRuns: 80 },
    );
    expect(checked).toBeGreaterThan(20);
  });

  it('is a function of the seed: same seed gives the same stain, different seeds differ', () => {
    fc.assert(
      fc.property(side, side, seed, seed, (h, w, s1, s2) => {
        fc.pre(s1 !== s2);
        const img = randomImage(h, w, 7);
        const x = addStain(img, h, w, new Rng(s1));
        const y = addStain(img, h, w, new Rng(s1));
        expect(firstDiff(bits(y.image), bits(x.image))).toBe(-1);
        expect(firstDiff(y.mask, x.mask)).toBe(-1);
        expect(y.params).toEqual(x.params);
        const z = addStain(img, h, w, new Rng(s2));
        expect(firstDiff(bits(z.image), bits(x.image))).not.toBe(-1);
      }),
      { numRuns: 60 },
    );
  });

  it('draws a fresh stain on every call with the same Rng', () => {
    const rng = new Rng(3);
    const img = new Float32Array(64 * 64).fill(0.5);
    const params = Array.from({ length: 20 }, () => JSON.stringify(addStain(img, 64, 64, rng).params));
    expect(new Set(params).size).toBe(20);
  });

  it('follows the ellipse closely when there is no jitter (k = 0)', () => {
    // Without jitter the spline passes through points of the ellipse, so the mask lies between the
    // ellipse shrunk by one pixel and the ellipse grown by one pixel.
    let checked = 0;
    fc.assert(
      fc.property(side, side, seed, (h, w, s) => {
        const { stain } = stainOf(h, w, s);
        const { semiAxes: [a, b], rotation, centre: [cr, cc], jitter } = stain.params;
        if (jitter !== 0) return;
        checked++;
        const level = (r: number, c: number, grow: number): number => {
          const dr = r - cr;
          const dc = c - cc;
          const u = dc * Math.cos(rotation) + dr * Math.sin(rotation);
          const v = -dc * Math.sin(rotation) + dr * Math.cos(rotation);
          return (u / (a + grow)) ** 2 + (v / (b + grow)) ** 2;
        };
        for (let i = 0; i < h * w; i++) {
          const r = Math.floor(i / w);
          const c = i % w;
          if (stain.mask[i] === 1 && level(r, c, 1) > 1) expect.fail(`mask pixel (${r}, ${c}) outside the grown ellipse`);
          if (stain.mask[i] === 0 && a > 1 && b > 1 && level(r, c, -1) <= 1) {
            expect.fail(`pixel (${r}, ${c}) inside the shrunk ellipse is not in the mask`);
          }
        }
      }),
      { numRuns: RUNS },
    );
    expect(checked).toBeGreaterThan(RUNS / 4);
  });

  it('covers an area of about pi*a*b when jitter is small', () => {
    const ratios: number[] = [];
    fc.assert(
      fc.property(fc.integer({ min: 40, max: 160 }), fc.integer({ min: 40, max: 160 }), seed, (h, w, s) => {
        const { stain } = stainOf(h, w, s);
        const { semiAxes: [a, b], jitter } = stain.params;
        if (Math.min(a, b) < 3) return; // pixel-centre areas of tiny ellipses are too coarse
        const ratio = maskCount(stain.mask) / (Math.PI * a * b);
        // k <= 1 here (a + b <= 38); jitter of one pixel deforms a thin stain more.
        if (jitter === 0) {
          expect(ratio).toBeGreaterThan(0.75);
          expect(ratio).toBeLessThan(1.25);
          ratios.push(ratio);
        } else {
          expect(ratio).toBeGreaterThan(0.5);
          expect(ratio).toBeLessThan(1.6);
        }
      }),
      { numRuns: 200 },
    );
    expect(ratios.length).toBeGreaterThan(10);
    const meanRatio = ratios.reduce((p, r) => p + r, 0) / ratios.length;
    expect(meanRatio).toBeGreaterThan(0.9);
    expect(meanRatio).toBeLessThan(1.1);
  });

  it('matches the §2 ranges at 256 x 256: semi-axes 2..30, jitter at most 3, colours spread over 10..220', () => {
    const rng = new Rng(11);
    const img = new Float32Array(256 * 256);
    const axes = new Set<number>();
    let minC = 255;
    let maxC = 0;
    let maxK = 0;
    for (let i = 0; i < 400; i++) {
      const { params } = addStain(img, 256, 256, rng);
      params.semiAxes.forEach((x) => axes.add(x));
      minC = Math.min(minC, params.colour);
      maxC = Math.max(maxC, params.colour);
      maxK = Math.max(maxK, params.jitter);
    }
    expect(Math.min(...axes)).toBe(2);
    expect(Math.max(...axes)).toBe(30);
    expect(axes.size).toBe(29);
    expect(minC).toBeLessThan(20);
    expect(maxC).toBeGreaterThan(210);
    // k = floor((a+b)/20) <= 3; k = 3 needs a = b = 30 (1 in 841), so only k = 2 is sure to show up.
    expect(maxK).toBeGreaterThanOrEqual(2);
    expect(maxK).toBeLessThanOrEqual(3);
  });
});
