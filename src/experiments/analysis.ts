/**
 * The numbers of the paper's analysis (Fig. 3, docs/reference-facts.md §4): for a clean image and a stained
 * version of it, the cosine similarity per layer i of the channel-mean maps,
 *   cos(mu_i(x_clean), mu_i(x_stained)),   mu_i(x) = mean over channels of l_i(x)  (an H_i x W_i map),
 * its distribution per layer (quartiles for box plots), and a plain statement of whether the claimed trend
 * appears: for AESc the discrepancy 1 - cos grows with depth, for AE it falls (trend(), with bootstrap intervals).
 */
import { noGrad } from '../engine/mode.js';
import { mean } from '../engine/ops/reduce.js';
import { fromArray, scope, type Tensor } from '../engine/tensor.js';
import type { Backend } from '../engine/backend.js';
import { Rng } from '../engine/random.js';
import { quartiles, type Quartiles } from './metrics.js';

/**
 * What the analysis and the evaluation need of a model: Autoencoder satisfies it, and so does a test stub.
 * forward() must return the output [N, C, S, S] and the named taps (NCHW) in forward order.
 */
export interface TapModel {
  forward(x: Tensor): { output: Tensor; taps: Record<string, Tensor> };
  tapNames(): string[];
  readonly options: { inputSize: number; inChannels?: number };
  /** Optional: the model is put in eval mode for the run and its previous mode restored. */
  training?: boolean;
  eval?(): unknown;
  train?(on?: boolean): unknown;
  /** Optional: the first parameter's backend is where inputs are created (else the default backend). */
  parameters?(): Tensor[];
}

/** The backend a model's inputs should live on. */
export function modelBackend(model: TapModel): Backend | undefined {
  const params = model.parameters?.();
  return params && params.length > 0 ? params[0].backend : undefined;
}

/** Runs fn with the model in eval mode, restoring its previous mode afterwards. */
export async function inEvalMode<T>(model: TapModel, fn: () => Promise<T>): Promise<T> {
  const wasTraining = model.training;
  model.eval?.();
  try {
    return await fn();
  } finally {
    if (wasTraining) model.train?.(true);
  }
}

/** A batch [n, 1, size, size] of single-channel images. */
export function imageBatch(images: Float32Array[], size: number, backend?: Backend): Tensor {
  const data = new Float32Array(images.length * size * size);
  images.forEach((im, i) => {
    if (im.length !== size * size) throw new Error(`image ${i} has ${im.length} pixels, expected ${size}x${size} = ${size * size}`);
    data.set(im, i * size * size);
  });
  return fromArray(data, [images.length, 1, size, size], { backend });
}

/** Splits a [N, H, W] (or [N, ...]) value array into N per-image Float32Arrays. */
function splitImages(values: ArrayLike<number>, n: number): Float32Array[] {
  const per = values.length / n;
  const all = values instanceof Float32Array ? values : Float32Array.from(values);
  return Array.from({ length: n }, (_, i) => all.slice(i * per, (i + 1) * per));
}

function checkNCHW(t: Tensor): void {
  if (t.rank !== 4) throw new Error(`channelMean: expected an NCHW tensor, got shape [${t.shape.join(', ')}]`);
}

/**
 * Per image of the batch, the H x W map mu = mean over channels of an NCHW tensor (row-major Float32Array of
 * H*W values). Computed with the engine (mean over axis 1) and read back synchronously, so CPU backend only;
 * see channelMeanAsync for any backend.
 */
export function channelMean(t: Tensor): Float32Array[] {
  checkNCHW(t);
  const m = noGrad(() => mean(t, 1));
  try {
    return splitImages(m.dataSync(), t.shape[0]);
  } finally {
    m.dispose();
  }
}

/** channelMean for any backend (asynchronous read-back). */
export async function channelMeanAsync(t: Tensor): Promise<Float32Array[]> {
  checkNCHW(t);
  const m = noGrad(() => mean(t, 1));
  try {
    return splitImages(await m.data(), t.shape[0]);
  } finally {
    m.dispose();
  }
}

/**
 * Cosine similarity a.b / (|a| |b|) in float64, clamped to [-1, 1]. When either vector is all zeros the
 * angle is undefined and the result is NaN; quartiles() leaves NaN out of the statistics (and its n says how
 * many values were used). Throws when the lengths differ.
 */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`cosine: vectors of lengths ${a.length} and ${b.length}`);
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  if (aa === 0 || bb === 0) return NaN;
  return Math.max(-1, Math.min(1, ab / Math.sqrt(aa * bb)));
}

export interface LayerSimilarity {
  /** cos(mu_i(clean_k), mu_i(stained_k)) for every image k, in input order (NaN for a zero map). */
  values: number[];
  stats: Quartiles;
}

/** Per layer name (l1..lN, forward order), the similarities and their summary. */
export type CosineAnalysis = Record<string, LayerSimilarity>;

/** Channel-mean maps of every tap for a batch, read back; per tap name, one map per image. */
async function tapMeans(model: TapModel, images: Float32Array[], names: string[]): Promise<Record<string, Float32Array[]>> {
  const size = model.options.inputSize;
  const backend = modelBackend(model);
  const means = noGrad(() => scope(() => {
    const { taps } = model.forward(imageBatch(images, size, backend));
    return names.map((name) => {
      const t = taps[name];
      if (!t) throw new Error(`the model returned no tap '${name}' (it has ${Object.keys(taps).join(', ')})`);
      checkNCHW(t);
      return mean(t, 1);
    });
  }));
  const out: Record<string, Float32Array[]> = {};
  try {
    for (let i = 0; i < names.length; i++) out[names[i]] = splitImages(await means[i].data(), images.length);
  } finally {
    for (const m of means) m.dispose();
  }
  return out;
}

/**
 * The Fig. 3 numbers for one model: forward the clean images and their stained versions (same order, same
 * count) in batches of opts.batchSize (default 8) under noGrad in eval mode (BatchNorm uses its running
 * statistics, so batching does not change the values), and for every image and tap compute
 * cos(mu_i(clean), mu_i(stained)). Tensors are disposed batch by batch; the model's mode is restored.
 */
export async function cosineAnalysis(
  model: TapModel,
  cleanImages: Float32Array[],
  stainedImages: Float32Array[],
  opts: { batchSize?: number } = {},
): Promise<CosineAnalysis> {
  if (cleanImages.length !== stainedImages.length) {
    throw new Error(`cosineAnalysis: ${cleanImages.length} clean images but ${stainedImages.length} stained ones (they must pair up)`);
  }
  if (cleanImages.length === 0) throw new Error('cosineAnalysis: no images');
  const batchSize = opts.batchSize ?? 8;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`cosineAnalysis: batchSize must be a positive integer, got ${batchSize}`);
  const names = model.tapNames();
  const values: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  await inEvalMode(model, async () => {
    for (let s = 0; s < cleanImages.length; s += batchSize) {
      const clean = await tapMeans(model, cleanImages.slice(s, s + batchSize), names);
      const stained = await tapMeans(model, stainedImages.slice(s, s + batchSize), names);
      for (const name of names) {
        clean[name].forEach((mu, k) => values[name].push(cosine(mu, stained[name][k])));
      }
    }
  });
  return Object.fromEntries(names.map((n) => [n, { values: values[n], stats: quartiles(values[n]) }]));
}

/** The numeric depth of a tap name 'l7' -> 7 (taps are named l1..lN in forward order). */
export function layerDepth(name: string): number {
  const m = /^l(\d+)$/.exec(name);
  if (!m) throw new Error(`layer name '${name}' is not of the form l<number>`);
  return Number(m[1]);
}

/**
 * The decoder taps of a network with N taps l1..lN: the last floor(N/2). Both presets have N = 2*depth - 1
 * taps of which depth are encoder tensors (esann: l1..l5 encoder, l6..l9 decoder; icpr: l1..l6, l7..l11).
 */
export function decoderLayers(names: string[]): string[] {
  const sorted = [...names].sort((a, b) => layerDepth(a) - layerDepth(b));
  return sorted.slice(sorted.length - Math.floor(sorted.length / 2));
}

/** A mean over image pairs and its 95% bootstrap confidence interval (pairs resampled with replacement). */
export interface Estimate {
  mean: number;
  ci: [number, number];
}

export interface ModelTrend {
  /** Median similarity per layer (the boxes of Fig. 3). */
  medians: Record<string, number>;
  /**
   * The depth trend of the discrepancy: per image pair, the least-squares slope of 1 - cos against the layer
   * number over the trend's layers (change per layer), averaged over the pairs.
   */
  slope: Estimate;
}

export type TrendVerdict = 'yes' | 'partly' | 'no' | 'n/a';

export interface TrendStatement {
  /** The layers the slopes are taken over, in depth order. */
  layers: string[];
  /** Taps left out, with why: a map of one value (its cosine is only a sign), or NaN similarities (a zero map). */
  excluded: Record<string, string>;
  AE: ModelTrend;
  AESc: ModelTrend;
  /** Per pair, AESc's slope minus AE's (the same image pairs go through both). */
  difference: Estimate;
  /** AESc's discrepancy grows with depth: its slope's interval lies above 0. */
  aescGrows: boolean;
  /** AE's discrepancy falls with depth: its slope's interval lies below 0. */
  aeFalls: boolean;
  /** AESc's grows more than AE's: the difference's interval lies above 0. */
  aescGrowsMore: boolean;
  /**
   * yes: the paper's claim in full (AESc's distances increase with depth, AE's decrease); partly: AESc's
   * increase, and more than AE's, but AE's do not decrease; no: otherwise; n/a: fewer than MIN_TREND_PAIRS pairs or
   * 2 layers.
   */
  verdict: TrendVerdict;
  sentence: string;
}

/** Resamples for the bootstrap intervals, and their seed (the intervals are reproducible). */
const BOOTSTRAP_RESAMPLES = 2000;
const BOOTSTRAP_SEED = 20240901;
/** Fewest image pairs for a verdict: a percentile bootstrap of 2 or 3 values only spans them, not a 95% interval. */
export const MIN_TREND_PAIRS = 8;

/** Least-squares slope of y against x. */
function slopeOf(x: readonly number[], y: readonly number[]): number {
  const mx = x.reduce((a, b) => a + b, 0) / x.length;
  const my = y.reduce((a, b) => a + b, 0) / y.length;
  let sxy = 0, sxx = 0;
  for (let i = 0; i < x.length; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
  }
  return sxy / sxx;
}

/** The mean of `values` and the 2.5% and 97.5% percentiles of the means of bootstrap resamples. */
export function bootstrapMean(values: readonly number[], resamples = BOOTSTRAP_RESAMPLES, seed = BOOTSTRAP_SEED): Estimate {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const rng = new Rng(seed);
  const means = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += values[rng.int(0, n - 1)];
    means[r] = sum / n;
  }
  means.sort();
  const at = (q: number): number => means[Math.min(resamples - 1, Math.max(0, Math.round(q * (resamples - 1))))];
  return { mean, ci: [at(0.025), at(0.975)] };
}

const num = (x: number): string => (x === 0 ? '0' : Math.abs(x) >= 0.01 ? x.toFixed(3) : x.toExponential(1));
const est = (e: Estimate): string => `${num(e.mean)} per layer, 95% CI [${num(e.ci[0])}, ${num(e.ci[1])}]`;
const direction = (e: Estimate): string => (e.ci[0] > 0 ? 'grows' : e.ci[1] < 0 ? 'falls' : 'shows no clear trend');

/**
 * Whether the paper's claimed trend appears in two cosine analyses of the same image pairs (AE and AESc): "the
 * distances between the activation tensors for AESc increase as we go deeper in the network while those for AE
 * decrease" (§3.2). Per model, the depth trend of the discrepancy 1 - cos is the mean over pairs of each pair's
 * least-squares slope against the layer number, over every tap but those in `exclude` (maps of one value) and
 * those with NaN similarities; a direction counts only when its bootstrap 95% interval excludes 0, so a
 * difference in the sixth decimal between two layers' medians cannot decide it.
 */
export function trend(resultAE: CosineAnalysis, resultAESc: CosineAnalysis, opts: { exclude?: Record<string, string> } = {}): TrendStatement {
  const excluded: Record<string, string> = { ...opts.exclude };
  const names = Object.keys(resultAESc).sort((a, b) => layerDepth(a) - layerDepth(b));
  for (const n of names) {
    if (n in excluded) continue;
    if (!(n in resultAE)) excluded[n] = 'not in the AE analysis';
    else if ([resultAE, resultAESc].some((r) => r[n].values.some(Number.isNaN))) excluded[n] = 'NaN similarities (a map of zeros)';
  }
  const layers = names.filter((n) => !(n in excluded));
  const pairs = resultAESc[names[0]]?.values.length ?? 0;
  const medians = (r: CosineAnalysis): Record<string, number> => Object.fromEntries(names.filter((n) => n in r).map((n) => [n, r[n].stats.median]));
  const depth = layers.map(layerDepth);
  const slopes = (r: CosineAnalysis): number[] => Array.from({ length: pairs }, (_, p) => slopeOf(depth, layers.map((n) => 1 - r[n].values[p])));
  const nan: Estimate = { mean: NaN, ci: [NaN, NaN] };
  const usable = pairs >= MIN_TREND_PAIRS && layers.length >= 2;
  const sAE = usable ? slopes(resultAE) : [], sAESc = usable ? slopes(resultAESc) : [];
  const AE: ModelTrend = { medians: medians(resultAE), slope: usable ? bootstrapMean(sAE) : nan };
  const AESc: ModelTrend = { medians: medians(resultAESc), slope: usable ? bootstrapMean(sAESc) : nan };
  const difference = usable ? bootstrapMean(sAESc.map((v, i) => v - sAE[i])) : nan;
  const aescGrows = AESc.slope.ci[0] > 0;
  const aeFalls = AE.slope.ci[1] < 0;
  const aescGrowsMore = difference.ci[0] > 0;
  const verdict: TrendVerdict = !usable ? 'n/a' : aescGrows && aeFalls ? 'yes' : aescGrows && aescGrowsMore ? 'partly' : 'no';
  const over = `over ${layers.join(', ')}${Object.keys(excluded).length ? ` (not ${Object.keys(excluded).join(', ')}: ${[...new Set(Object.values(excluded))].join('; ')})` : ''}, ${pairs} image pairs`;
  const aescPart = `the discrepancy 1 - cos between clean and stained maps ${direction(AESc.slope)} with depth for AESc (${est(AESc.slope)})`;
  const aePart = `for AE it ${direction(AE.slope)} (${est(AE.slope)})`;
  const diffPart = `AESc minus AE ${est(difference)}`;
  const sentence = {
    yes: `The paper's claimed trend appears: ${aescPart}, and ${aePart}; ${over}.`,
    partly: `The paper's claimed trend appears in part: ${aescPart}, more than for AE (${diffPart}), but AE's does not fall: ${aePart}; ${over}.`,
    no: `The paper's claimed trend does not appear: ${aescPart}; ${aePart}; ${diffPart}; ${over}.`,
    'n/a': `The trend cannot be determined: it needs at least ${MIN_TREND_PAIRS} image pairs and 2 layers (${over}).`,
  }[verdict];
  return { layers, excluded, AE, AESc, difference, aescGrows, aeFalls, aescGrowsMore, verdict, sentence };
}
