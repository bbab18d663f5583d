/**
 * The numbers of the paper's analysis (Fig. 3, docs/reference-facts.md §4): for a clean image and a stained
 * version of it, the cosine similarity per layer i of the channel-mean maps,
 *   cos(mu_i(x_clean), mu_i(x_stained)),   mu_i(x) = mean over channels of l_i(x)  (an H_i x W_i map),
 * its distribution per layer (quartiles for box plots), and a plain statement of whether the claimed trend
 * appears: for AESc the similarity falls with depth (the discrepancy grows), for AE it does not.
 */
import { noGrad } from '../engine/mode.js';
import { mean } from '../engine/ops/reduce.js';
import { fromArray, scope, type Tensor } from '../engine/tensor.js';
import type { Backend } from '../engine/backend.js';
import { quartiles, spearman, type Quartiles } from './metrics.js';

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

export interface ModelTrend {
  /** Median similarity per layer. */
  medians: Record<string, number>;
  /** Spearman correlation between layer depth and median similarity over the decoder layers. */
  spearmanDecoder: number;
  /** The same over all layers. */
  spearmanAll: number;
}

export interface TrendStatement {
  decoderLayers: string[];
  AE: ModelTrend;
  AESc: ModelTrend;
  /** AESc's decoder medians decrease with depth: Spearman < -0.5. */
  aescFalls: boolean;
  /** AE's decoder medians do not fall: Spearman >= 0 (a constant sequence, Spearman NaN, counts as not falling). */
  aeRises: boolean;
  /** Both: the paper's claimed trend appears. */
  paperTrendAppears: boolean;
  sentence: string;
}

function modelTrend(result: CosineAnalysis, decoder: string[]): ModelTrend {
  const names = Object.keys(result).sort((a, b) => layerDepth(a) - layerDepth(b));
  const medians = Object.fromEntries(names.map((n) => [n, result[n].stats.median]));
  // Layers whose median is NaN (every map zero) carry no information and are left out.
  const rho = (layers: string[]): number => {
    const used = layers.filter((n) => n in medians && !Number.isNaN(medians[n]));
    return spearman(used.map(layerDepth), used.map((n) => medians[n]));
  };
  return { medians, spearmanDecoder: rho(decoder), spearmanAll: rho(names) };
}

const fmt = (x: number): string => (Number.isNaN(x) ? 'undefined' : x.toFixed(2));

/**
 * Whether the paper's claimed trend appears in two cosine analyses (AE and AESc on the same image pairs):
 * per model the Spearman correlation between layer depth and the median similarity, over the decoder layers
 * (default: decoderLayers() of the AESc result's names) and over all layers. The claim holds when AESc's
 * decoder similarity falls (Spearman < -0.5) while AE's does not (Spearman >= 0).
 */
export function trend(resultAE: CosineAnalysis, resultAESc: CosineAnalysis, opts: { decoderLayers?: string[] } = {}): TrendStatement {
  const decoder = opts.decoderLayers ?? decoderLayers(Object.keys(resultAESc));
  const AE = modelTrend(resultAE, decoder);
  const AESc = modelTrend(resultAESc, decoder);
  const aescFalls = AESc.spearmanDecoder < -0.5;
  const aeRises = !(AE.spearmanDecoder < 0);
  const paperTrendAppears = aescFalls && aeRises;
  const span = decoder.length > 0 ? `${decoder[0]}..${decoder[decoder.length - 1]}` : '(none)';
  const aescPart = `AESc's median similarity ${aescFalls ? 'falls' : 'does not fall'} with depth over the decoder layers ${span} (Spearman ${fmt(AESc.spearmanDecoder)})`;
  const aePart = `AE's ${aeRises ? 'does not fall' : 'falls too'} (Spearman ${fmt(AE.spearmanDecoder)})`;
  const sentence = paperTrendAppears
    ? `The paper's claimed trend appears: ${aescPart} while ${aePart}.`
    : `The paper's claimed trend does not appear: ${aescPart}, and ${aePart}.`;
  return { decoderLayers: decoder, AE, AESc, aescFalls, aeRises, paperTrendAppears, sentence };
}
