/**
 * The numbers of the evaluation: AUROC (one implementation, used for image and pixel scores alike), ROC
 * curves for figures, and quartile summaries for the box plots of the cosine analysis.
 *
 * AUROC here is the Mann-Whitney statistic: the probability that a positive scores above a negative, ties
 * counting 1/2 (the same as the area under the ROC curve with straight segments across tied thresholds, which
 * is what scikit-learn's roc_auc_score gives). It takes O(n log n) time and O(n) typed-array memory: the
 * scores of each class are copied into a Float64Array, each is sorted natively (no comparator, no
 * per-element objects), and one merge walk counts, for every positive, the negatives below it and those tied
 * with it. That handles the millions of scores of a pixel-level AUROC.
 */

/** Labels: 1 / true = positive (anomalous), 0 / false = negative (good). */
export type BinaryLabels = ArrayLike<0 | 1 | boolean> | Uint8Array;

/** Scores of each class, as sorted Float64Arrays (ascending). Checks lengths, labels and NaN. */
function splitByClass(what: string, scores: ArrayLike<number>, labels: BinaryLabels): { pos: Float64Array; neg: Float64Array } {
  const n = scores.length;
  if (labels.length !== n) throw new Error(`${what}: ${n} scores but ${labels.length} labels (they must have the same length)`);
  let nPos = 0;
  for (let i = 0; i < n; i++) {
    const l = labels[i] as unknown;
    if (l === 1 || l === true) nPos++;
    else if (l !== 0 && l !== false) throw new Error(`${what}: label ${i} is ${String(l)}; labels must be 0/1 or false/true`);
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) {
    throw new Error(`${what}: needs both classes, got ${nPos} positive and ${nNeg} negative label(s) (AUROC is undefined when one class is empty)`);
  }
  const pos = new Float64Array(nPos);
  const neg = new Float64Array(nNeg);
  let p = 0, q = 0;
  for (let i = 0; i < n; i++) {
    const s = scores[i];
    if (Number.isNaN(s)) throw new Error(`${what}: score ${i} is NaN`);
    const l = labels[i] as unknown;
    if (l === 1 || l === true) pos[p++] = s;
    else neg[q++] = s;
  }
  // TypedArray.prototype.sort without a comparator sorts numerically (and fast).
  pos.sort();
  neg.sort();
  return { pos, neg };
}

/**
 * Area under the ROC curve of `scores` (higher = more anomalous) against binary `labels`, by the Mann-Whitney
 * U statistic with ties counted 1/2 (equivalently: average ranks for ties):
 *   AUROC = (1 / (P N)) * sum over (positive p, negative q) of [s_p > s_q] + 1/2 [s_p = s_q].
 * 1 = every positive above every negative, 0.5 = chance (or all scores tied), 0 = inverted.
 * Throws when the lengths differ, a label is not 0/1/boolean, a score is NaN, or one class is empty.
 * Infinite scores are allowed (they compare as usual).
 */
export function auroc(scores: ArrayLike<number>, labels: BinaryLabels): number {
  const { pos, neg } = splitByClass('auroc', scores, labels);
  // Walk the positives in ascending order; `below` = negatives strictly below the current value,
  // `tied` = negatives equal to it. Both only move forward, so the walk is O(P + N).
  let u = 0;
  let j = 0;
  let i = 0;
  while (i < pos.length) {
    const v = pos[i];
    let k = i;
    while (k < pos.length && pos[k] === v) k++; // positives with this value: [i, k)
    while (j < neg.length && neg[j] < v) j++;
    let t = j;
    while (t < neg.length && neg[t] === v) t++;
    u += (k - i) * (j + (t - j) / 2);
    i = k;
  }
  return u / (pos.length * neg.length);
}

export interface RocCurve {
  /** False-positive rates, from 0 to 1, non-decreasing. */
  fpr: number[];
  /** True-positive rates, from 0 to 1, non-decreasing. */
  tpr: number[];
  /** Threshold of each point: a sample is called positive when its score >= threshold (Infinity for (0,0)). */
  thresholds: number[];
  /** The AUROC (the trapezoidal area under the full curve, equal to auroc()). */
  auc: number;
}

/**
 * ROC curve for figures: one point per distinct score (threshold = that score, positive when score >=
 * threshold), starting at (0,0) and ending at (1,1). With maxPoints (default 1000, at least 2), a longer curve
 * is thinned to about maxPoints points evenly spaced along its index, always keeping the first and last point;
 * `auc` is computed from the full curve before thinning.
 */
export function rocCurve(scores: ArrayLike<number>, labels: BinaryLabels, maxPoints = 1000): RocCurve {
  if (!(maxPoints >= 2)) throw new Error(`rocCurve: maxPoints must be at least 2, got ${maxPoints}`);
  const { pos, neg } = splitByClass('rocCurve', scores, labels);
  const P = pos.length, N = neg.length;
  const fpr: number[] = [0], tpr: number[] = [0], thresholds: number[] = [Infinity];
  // Walk the distinct values from the highest down, over both sorted arrays.
  let i = P - 1, j = N - 1;
  let tp = 0, fp = 0;
  let area = 0;
  while (i >= 0 || j >= 0) {
    const v = Math.max(i >= 0 ? pos[i] : -Infinity, j >= 0 ? neg[j] : -Infinity);
    const tp0 = tp, fp0 = fp;
    while (i >= 0 && pos[i] === v) { i--; tp++; }
    while (j >= 0 && neg[j] === v) { j--; fp++; }
    area += ((fp - fp0) / N) * ((tp + tp0) / 2 / P); // trapezoid
    fpr.push(fp / N);
    tpr.push(tp / P);
    thresholds.push(v);
  }
  const auc = area;
  if (fpr.length <= maxPoints) return { fpr, tpr, thresholds, auc };
  const keep: number[] = [];
  const m = Math.floor(maxPoints);
  for (let k = 0; k < m; k++) keep.push(Math.round((k * (fpr.length - 1)) / (m - 1)));
  const uniq = [...new Set(keep)];
  return { fpr: uniq.map((k) => fpr[k]), tpr: uniq.map((k) => tpr[k]), thresholds: uniq.map((k) => thresholds[k]), auc };
}

export interface Quartiles {
  min: number;
  q1: number;
  median: number;
  q3: number;
  max: number;
  mean: number;
  /** Number of values summarised (NaN values are excluded and not counted). */
  n: number;
}

/**
 * The p-quantile (0 <= p <= 1) of ascending-sorted values by linear interpolation between closest ranks:
 * position h = p (n - 1), value = v[floor h] + (h - floor h) (v[floor h + 1] - v[floor h]) -- numpy's default
 * (method='linear', R's type 7). NaN for an empty array.
 */
export function quantileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  if (!(p >= 0 && p <= 1)) throw new Error(`quantile: p must be in [0, 1], got ${p}`);
  const h = p * (n - 1);
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/**
 * Five-number summary and mean of values, for box plots. Quartiles use linear interpolation (numpy's default,
 * see quantileSorted). NaN values (e.g. the cosine of a zero map) are excluded; n counts the values used.
 * All fields are NaN (n = 0) when nothing is left.
 */
export function quartiles(values: ArrayLike<number>): Quartiles {
  let count = 0;
  for (let i = 0; i < values.length; i++) if (!Number.isNaN(values[i])) count++;
  const v = new Float64Array(count);
  let k = 0, sum = 0;
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    if (Number.isNaN(x)) continue;
    v[k++] = x;
    sum += x;
  }
  v.sort();
  if (count === 0) return { min: NaN, q1: NaN, median: NaN, q3: NaN, max: NaN, mean: NaN, n: 0 };
  return {
    min: v[0],
    q1: quantileSorted(v, 0.25),
    median: quantileSorted(v, 0.5),
    q3: quantileSorted(v, 0.75),
    max: v[count - 1],
    mean: sum / count,
    n: count,
  };
}
