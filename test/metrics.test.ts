import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { auroc, quantileSorted, quartiles, rocCurve } from '../src/experiments/metrics.js';

/** O(n^2) reference: fraction of (positive, negative) pairs ordered correctly, ties 1/2. */
function bruteAuroc(scores: number[], labels: number[]): number {
  let u = 0, pairs = 0;
  for (let i = 0; i < scores.length; i++) {
    if (labels[i] !== 1) continue;
    for (let j = 0; j < scores.length; j++) {
      if (labels[j] !== 0) continue;
      pairs++;
      if (scores[i] > scores[j]) u += 1;
      else if (scores[i] === scores[j]) u += 0.5;
    }
  }
  return u / pairs;
}

describe('auroc (Mann-Whitney, ties 1/2)', () => {
  it('hand-computed cases', () => {
    // positives 0.35, 0.8 vs negatives 0.1, 0.4: pairs (0.35>0.1) (0.35<0.4) (0.8>0.1) (0.8>0.4) -> 3/4
    expect(auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).toBe(0.75);
    expect(auroc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1])).toBe(0.5); // all tied
    expect(auroc([0, 1, 2, 3], [0, 0, 1, 1])).toBe(1); // perfect
    expect(auroc([3, 2, 1, 0], [0, 0, 1, 1])).toBe(0); // inverted
    // one tie across classes: positives {2, 3}, negatives {1, 2}: 1 + 1 + 1 + 1/2 over 4 pairs
    expect(auroc([1, 2, 2, 3], [0, 0, 1, 1])).toBe(3.5 / 4);
    // booleans and a Uint8Array as labels
    expect(auroc([0.1, 0.4, 0.35, 0.8], [false, false, true, true])).toBe(0.75);
    expect(auroc(new Float32Array([0.1, 0.4, 0.35, 0.8]), new Uint8Array([0, 0, 1, 1]))).toBe(0.75);
    // infinities compare as usual
    expect(auroc([-Infinity, Infinity], [0, 1])).toBe(1);
  });

  it('throws clear errors', () => {
    expect(() => auroc([1, 2], [1, 1])).toThrow(/both classes.*2 positive and 0 negative/);
    expect(() => auroc([1, 2], [0, 0])).toThrow(/both classes/);
    expect(() => auroc([1, 2, 3], [0, 1])).toThrow(/3 scores but 2 labels/);
    expect(() => auroc([1, NaN], [0, 1])).toThrow(/NaN/);
    expect(() => auroc([1, 2], [0, 2 as 1])).toThrow(/labels must be 0\/1/);
  });

  it('equals the O(n^2) pair count (many ties: small integer scores)', () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 1 })), { minLength: 2, maxLength: 60 })
        .filter((xs) => xs.some(([, l]) => l === 1) && xs.some(([, l]) => l === 0)),
      (xs) => {
        const s = xs.map(([v]) => v), l = xs.map(([, b]) => b as 0 | 1);
        expect(auroc(s, l)).toBeCloseTo(bruteAuroc(s, l), 12);
      },
    ), { numRuns: 300 });
  });

  it('is invariant to strictly increasing transforms of the scores', () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.integer({ min: -20, max: 20 }), fc.boolean()), { minLength: 2, maxLength: 50 })
        .filter((xs) => xs.some(([, l]) => l) && xs.some(([, l]) => !l)),
      (xs) => {
        const s = xs.map(([v]) => v / 4), l = xs.map(([, b]) => b);
        const a = auroc(s, l);
        expect(auroc(s.map((v) => Math.exp(v)), l)).toBe(a);
        expect(auroc(s.map((v) => 3 * v + 7), l)).toBe(a);
        expect(auroc(s.map((v) => v ** 3), l)).toBe(a);
        // and a decreasing transform flips it
        expect(auroc(s.map((v) => -v), l)).toBeCloseTo(1 - a, 12);
      },
    ), { numRuns: 200 });
  });

  // No time limit here (speed is measured in bench/, not in unit tests): a quadratic AUROC would not finish a
  // million scores within the test timeout.
  it('handles a million pixel scores with many ties', () => {
    const n = 1_000_000;
    const s = new Float32Array(n), l = new Uint8Array(n);
    let seed = 12345;
    for (let i = 0; i < n; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      l[i] = i % 10 === 0 ? 1 : 0;
      s[i] = (seed % 256) + (l[i] ? 10 : 0); // integer-valued: lots of ties
    }
    const a = auroc(s, l);
    // The exact value from histograms of the 266 integer scores: P(pos > neg) + P(pos = neg) / 2.
    const pos = new Float64Array(266), neg = new Float64Array(266);
    for (let i = 0; i < n; i++) (l[i] ? pos : neg)[s[i]]++;
    let below = 0, wins = 0;
    for (let v = 0; v < 266; v++) {
      wins += pos[v] * (below + neg[v] / 2);
      below += neg[v];
    }
    const npos = pos.reduce((x, y) => x + y, 0);
    expect(a).toBeCloseTo(wins / (npos * (n - npos)), 12);
    expect(a).toBeGreaterThan(0.5);
  });
});

describe('rocCurve', () => {
  it('runs from (0,0) to (1,1) with one point per distinct score, area = auroc', () => {
    const s = [1, 2, 2, 3], l = [0, 0, 1, 1] as const;
    const r = rocCurve(s, l);
    expect(r.fpr).toEqual([0, 0, 0.5, 1]);
    expect(r.tpr).toEqual([0, 0.5, 1, 1]);
    expect(r.thresholds).toEqual([Infinity, 3, 2, 1]);
    expect(r.auc).toBe(auroc(s, l));
  });

  it('its trapezoidal area equals auroc (with ties), and rejects maxPoints < 2', () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 4 }), fc.boolean()), { minLength: 2, maxLength: 40 })
        .filter((xs) => xs.some(([, l]) => l) && xs.some(([, l]) => !l)),
      (xs) => {
        const s = xs.map(([v]) => v), l = xs.map(([, b]) => b);
        expect(rocCurve(s, l).auc).toBeCloseTo(auroc(s, l), 12);
      },
    ), { numRuns: 200 });
    expect(() => rocCurve([0, 1], [0, 1], 1)).toThrow(/maxPoints/);
  });

  it('thins to maxPoints keeping the ends; auc from the full curve', () => {
    const n = 1000;
    const s = Array.from({ length: n }, (_, i) => i), l = s.map((i) => (i % 3 === 0 ? 1 : 0) as 0 | 1);
    const r = rocCurve(s, l, 50);
    expect(r.fpr.length).toBeLessThanOrEqual(50);
    expect([r.fpr[0], r.tpr[0]]).toEqual([0, 0]);
    expect([r.fpr.at(-1), r.tpr.at(-1)]).toEqual([1, 1]);
    expect(r.auc).toBeCloseTo(auroc(s, l), 12);
  });
});

describe('quartiles (numpy linear interpolation)', () => {
  it('matches hand values', () => {
    // numpy.percentile([1,2,3,4], [25,50,75]) = [1.75, 2.5, 3.25]
    expect(quartiles([4, 1, 3, 2])).toEqual({ min: 1, q1: 1.75, median: 2.5, q3: 3.25, max: 4, mean: 2.5, n: 4 });
    // [1..5]: 2, 3, 4
    expect(quartiles([5, 4, 3, 2, 1])).toEqual({ min: 1, q1: 2, median: 3, q3: 4, max: 5, mean: 3, n: 5 });
    // [0, 10]: h = 0.25 -> 2.5, 5, 7.5
    expect(quartiles([10, 0])).toEqual({ min: 0, q1: 2.5, median: 5, q3: 7.5, max: 10, mean: 5, n: 2 });
    expect(quartiles([7])).toEqual({ min: 7, q1: 7, median: 7, q3: 7, max: 7, mean: 7, n: 1 });
  });

  it('leaves NaN out and is all-NaN when empty', () => {
    expect(quartiles([NaN, 1, 3, NaN])).toEqual({ min: 1, q1: 1.5, median: 2, q3: 2.5, max: 3, mean: 2, n: 2 });
    const e = quartiles([NaN]);
    expect(e.n).toBe(0);
    expect(e.median).toBeNaN();
  });

  it('quantileSorted interpolates between closest ranks', () => {
    expect(quantileSorted([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 0.9)).toBeCloseTo(8.1, 12);
    expect(quantileSorted([1, 2], 0)).toBe(1);
    expect(quantileSorted([1, 2], 1)).toBe(2);
  });
});
