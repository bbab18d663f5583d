/**
 * Anomaly detection with a trained autoencoder (docs/reference-facts.md §5), plus the paper's perspective of
 * decoder latent maps as anomaly maps of their own.
 *
 * Map kinds, all S x S (the image size), larger = more anomalous:
 *   residual  |x - x_hat| on the 0..255 grid: both images are brought to 8-bit gray levels first, as the
 *             authors' uint8 images are (see residualMap for rounding vs their truncation). Test inputs are
 *             the clean test images (no stain).
 *   l<i>      (one per decoder tap, default the last floor(N/2) taps, l6..l9 for esann) the latent
 *             discrepancy map: mu_i(x) = channel mean of tap i (engine op, mean over axis 1), resized to S x S
 *             bilinearly (OpenCV convention, resizeBilinear of data/png.ts), minus the per-pixel mean map m_i of
 *             the GOOD training images, in absolute value: D_i(x) = |up(mu_i(x)) - m_i|. It is then expressed in
 *             residual units: L_i = D_i * (s_R / s_i), where s_i = the root-mean-square of D_i over all pixels
 *             of the good training images and s_R = the same RMS for the residual map. So on good training
 *             images every map kind has the same RMS (s_R gray levels); this scaling is monotone per layer,
 *             so it changes no AUROC of a single map, only l0 (which rounds) and the combined map.
 *   combined  the equal-weight normalised sum: C = (R + sum_i L_i) / (1 + k) for k latent layers (a mean of
 *             maps that all have the same RMS on good training images). A sum rather than a product: where the
 *             residual is ~0 (a skip connection copies the defect through, the paper's concern) a product
 *             would erase the latent evidence, a sum keeps it.
 *   Degenerate scales (0, e.g. a perfect reconstruction or a constant latent map on the training images) are
 *   replaced by 1 and reported in `notes`.
 *
 * Image scores: four norms of each map (imageScores), all reported; l2 (RMS) is fixed in advance as the
 * headline (HEADLINE_NORM), since the authors' code reports the best of the four.
 * Image AUROC: good vs all defect kinds, and good vs each defect kind. Pixel AUROC: over all pixels of the
 * test images against the binarised masks (good images: all-zero masks).
 */
import { noGrad } from '../engine/mode.js';
import { mean } from '../engine/ops/reduce.js';
import { scope, type Tensor } from '../engine/tensor.js';
import { decoderLayers, imageBatch, inEvalMode, modelBackend, type TapModel } from './analysis.js';
import { resizeBilinear } from './data/png.js';
import { auroc } from './metrics.js';

export const NORMS = ['l0', 'l1', 'l2', 'linf'] as const;
export type NormName = (typeof NORMS)[number];
/** The norm fixed in advance for the headline image AUROC. */
export const HEADLINE_NORM: NormName = 'l2';

/**
 * How [0,1] values become 8-bit gray levels. 'round' (default): round(255 v), the gray level an 8-bit
 * image of value v has (inputs read from PNG are exactly k/255, so they come back as k). 'truncate': what the
 * authors' code does, np.multiply(float32 array, 255).astype(np.uint8), i.e. floor of the float32 product
 * (it can lose one level to float error, and biases the reconstruction down by 0.5 level on average).
 * Values are clamped to [0, 255] (numpy's uint8 cast would wrap out-of-range values instead).
 */
export type Quantize = 'round' | 'truncate';

function toGray(v: number, quantize: Quantize): number {
  const g = quantize === 'round' ? Math.round(v * 255) : Math.trunc(Math.fround(Math.fround(v) * 255));
  return g < 0 ? 0 : g > 255 ? 255 : g;
}

/**
 * The residual anomaly map |x - x_hat| on the 0..255 grid: |g(x) - g(x_hat)| with g the 8-bit quantisation
 * (see Quantize; default rounding). Integers 0..255, as a Float32Array of the same length.
 */
export function residualMap(x: ArrayLike<number>, xhat: ArrayLike<number>, quantize: Quantize = 'round'): Float32Array {
  if (x.length !== xhat.length) throw new Error(`residualMap: image has ${x.length} pixels, reconstruction ${xhat.length}`);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = Math.abs(toGray(x[i], quantize) - toGray(xhat[i], quantize));
  return out;
}

export interface ImageScores {
  /** Number of pixels whose value, rounded to an integer (gray level), is non-zero. */
  l0: number;
  /** Mean of the map (the authors' mean absolute error). */
  l1: number;
  /** Root mean square of the map (the headline). */
  l2: number;
  /** Maximum of the map. */
  linf: number;
}

/**
 * The four image scores of an anomaly map (non-negative values), as in the authors' l_metric: l0 = count of
 * non-zero pixels after rounding to integers (exact for the integer residual; for the latent maps, which are
 * in gray-level units, it counts pixels at >= 0.5), l1 = mean, l2 = RMS, linf = max.
 */
export function imageScores(map: ArrayLike<number>): ImageScores {
  const n = map.length;
  if (n === 0) throw new Error('imageScores: empty map');
  let l0 = 0, sum = 0, sq = 0, max = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = map[i];
    if (Math.round(v) !== 0) l0++;
    sum += v;
    sq += v * v;
    if (v > max) max = v;
  }
  return { l0, l1: sum / n, l2: Math.sqrt(sq / n), linf: max };
}

/** The good-training statistics the latent maps are measured against. */
export interface LatentReference {
  /** The latent layers (decoder taps) used. */
  layers: string[];
  /** Image side S. */
  size: number;
  /** Per layer, the mean over good training images of up(mu_i) (S x S). */
  meanMaps: Record<string, Float32Array>;
  /** Per layer, s_i = RMS over good training pixels of |up(mu_i) - m_i| (raw units; 1 if it was 0). */
  latentScales: Record<string, number>;
  /** s_R = RMS over good training pixels of the residual map, in gray levels (1 if it was 0). */
  residualScale: number;
  /** Number of good training images used. */
  count: number;
  notes: string[];
}

export interface EvaluateOptions {
  /** Images per forward pass (default 8). */
  batchSize?: number;
  /** Latent layers (default: the decoder taps, decoderLayers(model.tapNames())). */
  latentLayers?: string[];
  quantize?: Quantize;
  /** Label of defect-free test images (default 'good', as in MVTec AD). */
  goodLabel?: string;
  /** Compute pixel AUROCs (default true; they hold 4 bytes per test pixel per map kind in memory). */
  pixel?: boolean;
  /** A reference computed earlier by latentReference (skips the pass over the training images). */
  reference?: LatentReference;
  /** Called with every test image's maps (S x S, per kind), e.g. to write figures; not kept otherwise. */
  onMaps?: (index: number, sample: TestSample, maps: Record<string, Float32Array>) => void | Promise<void>;
}

export interface TestSample {
  image: Float32Array;
  /** goodLabel ('good') or the defect kind. */
  label: string;
  /** S x S 0/1 (any non-zero counts as defect) ground truth; null for good images. */
  mask: Uint8Array | null;
}

/** One batch through the model: the reconstructions and the channel-mean maps of the given taps, read back. */
async function forwardBatch(model: TapModel, images: Float32Array[], layers: string[]): Promise<{
  outputs: Float32Array[];
  means: Record<string, { maps: Float32Array[]; h: number; w: number }>;
}> {
  const S = model.options.inputSize;
  const n = images.length;
  const tensors = noGrad(() => scope(() => {
    const { output, taps } = model.forward(imageBatch(images, S, modelBackend(model)));
    if (output.rank !== 4 || output.shape[0] !== n || output.shape[1] !== 1 || output.shape[2] !== S || output.shape[3] !== S) {
      throw new Error(`evaluate: the model's output has shape [${output.shape.join(', ')}], expected [${n}, 1, ${S}, ${S}]`);
    }
    const maps: Tensor[] = layers.map((name) => {
      const t = taps[name];
      if (!t) throw new Error(`evaluate: the model returned no tap '${name}' (it has ${Object.keys(taps).join(', ')})`);
      if (t.rank !== 4) throw new Error(`evaluate: tap '${name}' has shape [${t.shape.join(', ')}], expected NCHW`);
      return mean(t, 1); // mu_i: [n, h, w]
    });
    return [output, ...maps];
  }));
  try {
    const out = await tensors[0].data();
    const outputs = images.map((_, i) => Float32Array.from(out.subarray(i * S * S, (i + 1) * S * S)));
    const means: Record<string, { maps: Float32Array[]; h: number; w: number }> = {};
    for (let l = 0; l < layers.length; l++) {
      const t = tensors[l + 1];
      const [, h, w] = t.shape;
      const v = await t.data();
      means[layers[l]] = { h, w, maps: images.map((_, i) => Float32Array.from(v.subarray(i * h * w, (i + 1) * h * w))) };
    }
    return { outputs, means };
  } finally {
    for (const t of tensors) t.dispose();
  }
}

function checkBatchSize(b: number): number {
  if (!Number.isInteger(b) || b < 1) throw new Error(`evaluate: batchSize must be a positive integer, got ${b}`);
  return b;
}

/**
 * The good-training reference of the latent maps (see the file comment): one pass over trainGood in eval
 * mode under noGrad, accumulating per-pixel sums (float64) of up(mu_i) and its square for every layer, and
 * the sum of squared residuals. Memory: two S x S float64 maps per layer.
 */
export async function latentReference(
  model: TapModel,
  trainGood: Float32Array[],
  opts: { batchSize?: number; latentLayers?: string[]; quantize?: Quantize } = {},
): Promise<LatentReference> {
  if (trainGood.length === 0) throw new Error('latentReference: no good training images (the latent maps are measured against them)');
  const S = model.options.inputSize;
  const layers = opts.latentLayers ?? decoderLayers(model.tapNames());
  const batchSize = checkBatchSize(opts.batchSize ?? 8);
  const quantize = opts.quantize ?? 'round';
  const sums = Object.fromEntries(layers.map((l) => [l, new Float64Array(S * S)]));
  const sumsSq = Object.fromEntries(layers.map((l) => [l, new Float64Array(S * S)]));
  let residualSq = 0;
  await inEvalMode(model, async () => {
    for (let s = 0; s < trainGood.length; s += batchSize) {
      const batch = trainGood.slice(s, s + batchSize);
      const { outputs, means } = await forwardBatch(model, batch, layers);
      batch.forEach((x, i) => {
        const r = residualMap(x, outputs[i], quantize);
        for (let p = 0; p < r.length; p++) residualSq += r[p] * r[p];
        for (const l of layers) {
          const { maps, h, w } = means[l];
          const up = resizeBilinear(maps[i], h, w, S, S);
          const sum = sums[l], sq = sumsSq[l];
          for (let p = 0; p < up.length; p++) {
            sum[p] += up[p];
            sq[p] += up[p] * up[p];
          }
        }
      });
    }
  });
  const n = trainGood.length;
  const notes: string[] = [];
  const meanMaps: Record<string, Float32Array> = {};
  const latentScales: Record<string, number> = {};
  for (const l of layers) {
    const m = new Float64Array(S * S);
    let variance = 0;
    for (let p = 0; p < m.length; p++) {
      m[p] = sums[l][p] / n;
      // mean over images of (up(mu) - m)^2 at pixel p = E[up^2] - m^2
      variance += Math.max(0, sumsSq[l][p] / n - m[p] * m[p]);
    }
    meanMaps[l] = Float32Array.from(m);
    let scale = Math.sqrt(variance / m.length);
    if (!(scale > 0)) {
      notes.push(`latent layer ${l}: its channel-mean map does not vary over the good training images (scale 0); scale set to 1`);
      scale = 1;
    }
    latentScales[l] = scale;
  }
  let residualScale = Math.sqrt(residualSq / (n * S * S));
  if (!(residualScale > 0)) {
    notes.push('residual: zero on every good training pixel (scale 0); scale set to 1 gray level');
    residualScale = 1;
  }
  return { layers, size: S, meanMaps, latentScales, residualScale, count: n, notes };
}

/** L_i = |up(mu_i) - m_i| * (s_R / s_i): the latent discrepancy map of one layer in residual (gray-level) units. */
export function latentMap(mu: Float32Array, h: number, w: number, ref: LatentReference, layer: string): Float32Array {
  const m = ref.meanMaps[layer];
  if (!m) throw new Error(`latentMap: the reference has no layer '${layer}' (it has ${ref.layers.join(', ')})`);
  const up = resizeBilinear(mu, h, w, ref.size, ref.size);
  const k = ref.residualScale / ref.latentScales[layer];
  for (let p = 0; p < up.length; p++) up[p] = Math.abs(up[p] - m[p]) * k;
  return up;
}

/** C = (R + sum_i L_i) / (1 + k): the equal-weight combination of the residual and k latent maps. */
export function combinedMap(residual: Float32Array, latents: Float32Array[]): Float32Array {
  const out = Float32Array.from(residual);
  for (const L of latents) for (let p = 0; p < out.length; p++) out[p] += L[p];
  const d = 1 + latents.length;
  for (let p = 0; p < out.length; p++) out[p] /= d;
  return out;
}

export interface NormAuroc {
  /** Good vs all defect kinds. */
  all: number;
  /** Good vs each defect kind alone. */
  perDefect: Record<string, number>;
}

export interface CategoryEvaluation {
  /** 'residual', the latent layers, 'combined'. */
  mapKinds: string[];
  norms: readonly NormName[];
  headlineNorm: NormName;
  /** Image AUROC per map kind and norm. */
  image: Record<string, Record<NormName, NormAuroc>>;
  /** Pixel AUROC per map kind (NaN when not computed or no defect pixel). */
  pixel: Record<string, number>;
  /** Per test image, in input order: its label and the four scores of every map kind (for figures). */
  scores: Array<{ index: number; label: string; good: boolean; scores: Record<string, ImageScores> }>;
  counts: { good: number; defective: number; perDefect: Record<string, number>; pixels: number; defectPixels: number };
  /** The reference's scales (its S x S mean maps are left out). */
  reference: { layers: string[]; residualScale: number; latentScales: Record<string, number>; count: number };
  notes: string[];
}

/**
 * Evaluate one category: image AUROCs (per map kind and norm; good vs all defects and per defect kind) and
 * pixel AUROCs (per map kind, over all test pixels against the masks), with per-image scores. The model runs
 * in eval mode under noGrad in batches, tensors disposed per batch; the model's mode is restored.
 * Test images are used as they are (not corrupted). Needs at least one good and one defective test image.
 */
export async function evaluateCategory(
  model: TapModel,
  test: TestSample[],
  trainGood: Float32Array[],
  opts: EvaluateOptions = {},
): Promise<CategoryEvaluation> {
  const S = model.options.inputSize;
  const goodLabel = opts.goodLabel ?? 'good';
  const quantize = opts.quantize ?? 'round';
  const batchSize = checkBatchSize(opts.batchSize ?? 8);
  const doPixel = opts.pixel ?? true;
  test.forEach((t, i) => {
    if (t.image.length !== S * S) throw new Error(`evaluateCategory: test image ${i} has ${t.image.length} pixels, expected ${S}x${S}`);
    if (t.mask && t.mask.length !== S * S) throw new Error(`evaluateCategory: the mask of test image ${i} has ${t.mask.length} pixels, expected ${S}x${S}`);
  });
  const isGood = test.map((t) => t.label === goodLabel);
  const nGood = isGood.filter(Boolean).length;
  if (nGood === 0 || nGood === test.length) {
    throw new Error(`evaluateCategory: needs good ('${goodLabel}') and defective test images, got ${nGood} good of ${test.length}`);
  }
  const defects = [...new Set(test.filter((_, i) => !isGood[i]).map((t) => t.label))].sort();

  const ref = opts.reference ?? await latentReference(model, trainGood, { batchSize, latentLayers: opts.latentLayers, quantize });
  const layers = opts.latentLayers ?? ref.layers;
  for (const l of layers) if (!(l in ref.meanMaps)) throw new Error(`evaluateCategory: the reference has no layer '${l}'`);
  const kinds = ['residual', ...layers, 'combined'];
  const notes = [...ref.notes];

  // Pixel scores: defective images without a mask cannot be scored per pixel and are left out.
  const inPixel = test.map((t, i) => isGood[i] || t.mask !== null);
  const noMask = test.length - inPixel.filter(Boolean).length;
  if (noMask > 0) notes.push(`${noMask} defective test image(s) without a mask left out of the pixel AUROC`);
  const nPix = doPixel ? inPixel.filter(Boolean).length * S * S : 0;
  const pixelScores = Object.fromEntries(kinds.map((k) => [k, new Float32Array(nPix)]));
  const pixelLabels = new Uint8Array(nPix);
  let pixOffset = 0;

  const scores: CategoryEvaluation['scores'] = [];
  await inEvalMode(model, async () => {
    for (let s = 0; s < test.length; s += batchSize) {
      const batch = test.slice(s, s + batchSize);
      const { outputs, means } = await forwardBatch(model, batch.map((t) => t.image), layers);
      for (let i = 0; i < batch.length; i++) {
        const index = s + i;
        const sample = batch[i];
        const residual = residualMap(sample.image, outputs[i], quantize);
        const latents = layers.map((l) => latentMap(means[l].maps[i], means[l].h, means[l].w, ref, l));
        const maps: Record<string, Float32Array> = { residual };
        layers.forEach((l, k) => (maps[l] = latents[k]));
        maps.combined = combinedMap(residual, latents);
        scores.push({ index, label: sample.label, good: isGood[index], scores: Object.fromEntries(kinds.map((k) => [k, imageScores(maps[k])])) });
        if (doPixel && inPixel[index]) {
          for (const k of kinds) pixelScores[k].set(maps[k], pixOffset);
          if (sample.mask) for (let p = 0; p < S * S; p++) pixelLabels[pixOffset + p] = sample.mask[p] ? 1 : 0;
          pixOffset += S * S;
        }
        await opts.onMaps?.(index, sample, maps);
      }
    }
  });

  // Image AUROCs.
  const image: CategoryEvaluation['image'] = {};
  const labelsAll = isGood.map((g) => (g ? 0 : 1) as 0 | 1);
  for (const k of kinds) {
    image[k] = {} as Record<NormName, NormAuroc>;
    for (const norm of NORMS) {
      const values = scores.map((r) => r.scores[k][norm]);
      const perDefect: Record<string, number> = {};
      for (const d of defects) {
        const idx = test.map((_, i) => i).filter((i) => isGood[i] || test[i].label === d);
        perDefect[d] = auroc(idx.map((i) => values[i]), idx.map((i) => labelsAll[i]));
      }
      image[k][norm] = { all: auroc(values, labelsAll), perDefect };
    }
  }

  // Pixel AUROCs.
  let defectPixels = 0;
  for (let p = 0; p < nPix; p++) defectPixels += pixelLabels[p];
  const pixel: Record<string, number> = {};
  for (const k of kinds) {
    if (!doPixel) pixel[k] = NaN;
    else if (defectPixels === 0 || defectPixels === nPix) pixel[k] = NaN;
    else pixel[k] = auroc(pixelScores[k], pixelLabels);
  }
  if (doPixel && (defectPixels === 0 || defectPixels === nPix)) notes.push('pixel AUROC undefined: the masks hold no defect pixel (or only defect pixels)');

  const perDefect = Object.fromEntries(defects.map((d) => [d, test.filter((t) => t.label === d).length]));
  return {
    mapKinds: kinds,
    norms: NORMS,
    headlineNorm: HEADLINE_NORM,
    image,
    pixel,
    scores,
    counts: { good: nGood, defective: test.length - nGood, perDefect, pixels: nPix, defectPixels },
    reference: { layers: ref.layers, residualScale: ref.residualScale, latentScales: ref.latentScales, count: ref.count },
    notes,
  };
}
