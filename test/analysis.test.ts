import { describe, expect, it } from 'vitest';
import * as sg from '../src/engine/index.js';
import { buildAutoencoder } from '../src/models/autoencoder.js';
import { bootstrapMean, channelMean, channelMeanAsync, cosine, cosineAnalysis, decoderLayers, trend, type CosineAnalysis, type TapModel } from '../src/experiments/analysis.js';
import { overallTrend } from '../src/experiments/pipeline.js';
import { quartiles } from '../src/experiments/metrics.js';
import {
  combinedMap, evaluateCategory, HEADLINE_NORM, imageScores, latentMap, latentReference, NORMS, residualMap, type LatentReference,
  type TestSample,
} from '../src/experiments/evaluate.js';

function randomImages(n: number, size: number, seed: number): Float32Array[] {
  const rng = new sg.Rng(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: size * size }, () => rng.uniform(0, 1)));
}

describe('cosine and channelMean', () => {
  it('cosine of known vectors', () => {
    expect(cosine([1, 0], [0, 1])).toBe(0);
    expect(cosine([1, 2, 3], [2, 4, 6])).toBeCloseTo(1, 12);
    expect(cosine([1, 1], [-2, -2])).toBeCloseTo(-1, 12);
    expect(cosine([3, 4], [4, 3])).toBeCloseTo(24 / 25, 12);
    expect(cosine([0, 0], [1, 2])).toBeNaN(); // undefined angle: NaN, left out of quartiles
    expect(quartiles([cosine([0, 0], [1, 2]), 0.5]).n).toBe(1);
    expect(() => cosine([1], [1, 2])).toThrow(/lengths 1 and 2/);
  });

  it('channelMean of a hand-built [2, 3, 2, 2] tensor', async () => {
    // image 0: channels c, values c*4 + p (p = pixel 0..3) -> mean over c of (4c + p) = 4 + p
    // image 1: channels all 1, 2, 6 at every pixel -> mean 3
    const data = [
      0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
      1, 1, 1, 1, 2, 2, 2, 2, 6, 6, 6, 6,
    ];
    const t = sg.fromArray(data, [2, 3, 2, 2]);
    const m = channelMean(t);
    expect(m.map((a) => Array.from(a))).toEqual([[4, 5, 6, 7], [3, 3, 3, 3]]);
    expect((await channelMeanAsync(t)).map((a) => Array.from(a))).toEqual([[4, 5, 6, 7], [3, 3, 3, 3]]);
    expect(() => channelMean(sg.zeros([2, 3]))).toThrow(/NCHW/);
    t.dispose();
  });
});

describe('cosineAnalysis with a tiny real Autoencoder', () => {
  it('one value per image per layer, within [-1, 1]; identical images give 1; batching does not matter', async () => {
    const model = buildAutoencoder('esann', { skips: true, inputSize: 32, depth: 3, baseChannels: 4 });
    const clean = randomImages(3, 32, 1);
    // A crude stain: a 10x10 block set to 0.3.
    const stained = clean.map((im) => {
      const s = Float32Array.from(im);
      for (let y = 8; y < 18; y++) for (let x = 10; x < 20; x++) s[y * 32 + x] = 0.3;
      return s;
    });
    const live = sg.memory().tensors;
    const r = await cosineAnalysis(model, clean, stained, { batchSize: 2 });
    expect(sg.memory().tensors).toBe(live); // everything disposed
    expect(model.training).toBe(true); // mode restored
    expect(Object.keys(r)).toEqual(['l1', 'l2', 'l3', 'l4', 'l5']);
    for (const { values, stats } of Object.values(r)) {
      expect(values).toHaveLength(3);
      for (const v of values) {
        expect(v).toBeGreaterThanOrEqual(-1);
        expect(v).toBeLessThanOrEqual(1);
      }
      expect(stats.n).toBe(3);
    }
    const same = await cosineAnalysis(model, clean, clean, { batchSize: 3 });
    for (const { values } of Object.values(same)) for (const v of values) expect(v).toBeCloseTo(1, 6);
    const one = await cosineAnalysis(model, clean, stained, { batchSize: 1 });
    for (const name of Object.keys(r)) r[name].values.forEach((v, i) => expect(one[name].values[i]).toBeCloseTo(v, 5));
    await expect(cosineAnalysis(model, clean, stained.slice(1))).rejects.toThrow(/must pair up/);
    model.dispose();
  });
});

/** An analysis of `pairs` image pairs whose discrepancy 1 - cos at layer l_d is disc(d, pair). */
function analysisOf(layers: number, pairs: number, disc: (d: number, p: number) => number): CosineAnalysis {
  return Object.fromEntries(Array.from({ length: layers }, (_, i) => {
    const values = Array.from({ length: pairs }, (_, p) => 1 - disc(i + 1, p));
    return [`l${i + 1}`, { values, stats: quartiles(values) }];
  }));
}

/** Deterministic noise in [-1, 1] for (layer, pair). */
const noise = (d: number, p: number): number => Math.sin(d * 12.9898 + p * 78.233) * 0.999;

describe('trend', () => {
  it('decoder layers are the last floor(N/2) taps', () => {
    expect(decoderLayers(['l1', 'l2', 'l3', 'l4', 'l5', 'l6', 'l7', 'l8', 'l9'])).toEqual(['l6', 'l7', 'l8', 'l9']);
    expect(decoderLayers(Array.from({ length: 11 }, (_, i) => `l${i + 1}`))).toEqual(['l7', 'l8', 'l9', 'l10', 'l11']);
  });

  it('bootstrapMean: the mean, and an interval around it that is reproducible and shrinks with more data', () => {
    const values = Array.from({ length: 16 }, (_, i) => noise(1, i));
    const e = bootstrapMean(values);
    expect(e.mean).toBeCloseTo(values.reduce((a, b) => a + b, 0) / 16, 14);
    expect(e.ci[0]).toBeLessThan(e.mean);
    expect(e.ci[1]).toBeGreaterThan(e.mean);
    expect(bootstrapMean(values)).toEqual(e);
    const wide = bootstrapMean(values.concat(values, values, values));
    expect(wide.ci[1] - wide.ci[0]).toBeLessThan(e.ci[1] - e.ci[0]);
    expect(bootstrapMean([3, 3, 3])).toEqual({ mean: 3, ci: [3, 3] });
  });

  it('bootstrapMean: a 95% interval (the normal one, mean +- 1.96 sd / sqrt(n), for many values), every value drawn', () => {
    // 400 evenly spread values: the bootstrap distribution of the mean is close to normal, with sd = sd(values) / sqrt(n).
    const values = Array.from({ length: 400 }, (_, i) => i / 399);
    const mean = 0.5;
    const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length) / Math.sqrt(values.length);
    const e = bootstrapMean(values);
    for (const [got, want] of [[e.ci[0], mean - 1.96 * sd], [e.ci[1], mean + 1.96 * sd]]) {
      expect(Math.abs(got - want) / (1.96 * sd)).toBeLessThan(0.08); // (a 90% interval would be 16% short)
    }
    // A value in the last place is drawn too: 19 zeros and a one give resamples with the one in them.
    const last = bootstrapMean([...Array.from({ length: 19 }, () => 0), 1]);
    expect(last.ci[0]).toBe(0);
    expect(last.ci[1]).toBeGreaterThanOrEqual(0.1);
  });

  it('yes: the paper\'s claim in full, AESc\'s discrepancy grows with depth and AE\'s falls', () => {
    const aesc = analysisOf(9, 12, (d, p) => 1e-3 * d + 2e-4 * noise(d, p));
    const ae = analysisOf(9, 12, (d, p) => 1e-2 - 5e-4 * d + 2e-4 * noise(d, p + 50));
    const t = trend(ae, aesc);
    expect(t.layers).toEqual(['l1', 'l2', 'l3', 'l4', 'l5', 'l6', 'l7', 'l8', 'l9']);
    expect(t.AESc.slope.mean).toBeCloseTo(1e-3, 4);
    expect(t.AE.slope.mean).toBeCloseTo(-5e-4, 4);
    expect([t.aescGrows, t.aeFalls, t.aescGrowsMore, t.verdict]).toEqual([true, true, true, 'yes']);
    expect(t.sentence).toMatch(/^The paper's claimed trend appears: the discrepancy 1 - cos between clean and stained maps grows with depth for AESc \(1\.0e-3 per layer, 95% CI \[/);
    expect(t.sentence).toMatch(/for AE it falls/);
  });

  it('partly: AESc\'s grows, more than AE\'s, but AE\'s shows no clear trend', () => {
    const aesc = analysisOf(9, 12, (d, p) => 1e-3 * d + 2e-4 * noise(d, p));
    const ae = analysisOf(9, 12, (d, p) => 1e-6 + 1e-6 * noise(d, p + 50));
    const t = trend(ae, aesc);
    expect([t.aescGrows, t.aeFalls, t.aescGrowsMore, t.verdict]).toEqual([true, false, true, 'partly']);
    expect(t.sentence).toMatch(/^The paper's claimed trend appears in part: .*more than for AE .*but AE's does not fall: for AE it shows no clear trend/);
  });

  it('no: AESc\'s falls, or both grow alike; and noise in the sixth decimal decides nothing', () => {
    const falling = analysisOf(9, 12, (d, p) => 1e-2 - 1e-3 * d + 2e-4 * noise(d, p));
    expect(trend(falling, falling).verdict).toBe('no');
    const growing = analysisOf(9, 12, (d, p) => 1e-3 * d + 2e-4 * noise(d, p));
    const t = trend(growing, growing);
    expect([t.aescGrows, t.aescGrowsMore, t.verdict]).toEqual([true, false, 'no']);
    expect(t.difference).toEqual({ mean: 0, ci: [0, 0] });
    // The review's case: AE's layer medians differ by ~1e-6 in some order, with no real trend: its direction is
    // "no clear trend", never "falls" or "rises", whatever the order.
    const aesc = analysisOf(9, 16, (d, p) => 1e-3 * d + 2e-4 * noise(d, p));
    for (let shift = 0; shift < 5; shift++) {
      const ae = analysisOf(9, 16, (d, p) => 3e-6 + 2e-6 * noise(d + shift, p));
      const s2 = trend(ae, aesc).AE.slope;
      expect(s2.ci[0], `shift ${shift}`).toBeLessThan(0);
      expect(s2.ci[1], `shift ${shift}`).toBeGreaterThan(0);
    }
  });

  it('leaves out the layers it is told to (1x1 maps) and those with NaN similarities; n/a with fewer than 8 pairs', () => {
    const aesc = analysisOf(9, 8, (d, p) => (d === 5 ? 0 : 1e-3 * d + 1e-4 * noise(d, p)));
    const ae = analysisOf(9, 8, (d, p) => (d === 7 ? NaN : 1e-2 - 1e-3 * d + 1e-4 * noise(d, p)));
    const t = trend(ae, aesc, { exclude: { l5: 'a 1x1 map, whose cosine is only a sign' } });
    expect(t.layers).toEqual(['l1', 'l2', 'l3', 'l4', 'l6', 'l8', 'l9']);
    expect(t.excluded).toEqual({ l5: 'a 1x1 map, whose cosine is only a sign', l7: 'NaN similarities (a map of zeros)' });
    expect(t.verdict).toBe('yes');
    expect(t.sentence).toMatch(/over l1, l2, l3, l4, l6, l8, l9 \(not l5, l7: a 1x1 map, whose cosine is only a sign; NaN similarities \(a map of zeros\)\), 8 image pairs/);
    const one = trend(analysisOf(9, 1, () => 0.1), analysisOf(9, 1, (d) => d * 0.01));
    expect(one.verdict).toBe('n/a');
    // A percentile bootstrap of a few values only spans them: below MIN_TREND_PAIRS pairs there is no verdict.
    const few = trend(analysisOf(9, 7, (d, p) => 1e-2 - 1e-3 * d + 1e-4 * noise(d, p)), analysisOf(9, 7, (d, p) => 1e-3 * d + 1e-4 * noise(d, p)));
    expect(few.verdict).toBe('n/a');
    expect(few.sentence).toMatch(/needs at least 8 image pairs/);
    expect(one.sentence).toMatch(/^The trend cannot be determined/);
  });

  it('the run\'s overall statement from the categories\' verdicts', () => {
    expect(overallTrend(['a', 'b'], ['yes', 'yes'])).toMatchObject({ verdict: 'yes', statement: expect.stringMatching(/^In every category \(a, b\)/) });
    expect(overallTrend(['a', 'b'], ['no', 'no'])).toMatchObject({ verdict: 'no', statement: expect.stringMatching(/^In no category/) });
    expect(overallTrend(['a', 'b', 'c'], ['yes', 'partly', 'no'])).toMatchObject({ verdict: 'partly', statement: expect.stringMatching(/it appears in a; in part .* in b; not in c\.$/) });
    expect(overallTrend(['a'], ['n/a']).verdict).toBe('n/a');
    expect(overallTrend(['a', 'b'], ['no', 'n/a'])).toEqual({ verdict: 'no', statement: expect.stringMatching(/not in a; it cannot be determined in b\.$/) });
    expect(overallTrend(['a', 'b'], ['yes', 'n/a'])).toEqual({ verdict: 'partly', statement: expect.stringMatching(/it appears in a; it cannot be determined in b\.$/) });
  });
});

describe('residual map and image scores', () => {
  it('identical images give 0; an image vs its inverse gives |2k - 255|', () => {
    const k = Float32Array.from({ length: 256 }, (_, i) => i);
    const x = k.map((v) => v / 255);
    expect(Array.from(residualMap(x, x)).every((v) => v === 0)).toBe(true);
    const inv = x.map((v) => 1 - v);
    expect(Array.from(residualMap(x, inv))).toEqual(Array.from(k, (v) => Math.abs(2 * v - 255)));
    // rounding vs the authors' truncation: 0.5 -> 128 vs 127
    expect(residualMap([0], [0.5])[0]).toBe(128);
    expect(residualMap([0], [0.5], 'truncate')[0]).toBe(127);
    // clamped to the 0..255 grid
    expect(residualMap([1.5], [-0.2])[0]).toBe(255);
  });

  it('l0 / l1 / l2 / linf of a hand map', () => {
    const s = imageScores([0, 0.4, 0.6, 2, 4]);
    expect(s.l0).toBe(3); // round: 0 0 1 2 4
    expect(s.l1).toBeCloseTo(7 / 5, 12);
    expect(s.l2).toBeCloseTo(Math.sqrt((0.16 + 0.36 + 4 + 16) / 5), 12);
    expect(s.linf).toBe(4);
    expect(HEADLINE_NORM).toBe('l2');
    expect(NORMS).toEqual(['l0', 'l1', 'l2', 'linf']);
  });
});

/**
 * A stub with the model interface: the output is all zeros (so the residual is 255 x the input on the gray
 * grid), tap l1 is the input and tap l2 (the one decoder tap of two) has two channels equal to the input (so its
 * channel mean is the input itself).
 */
function stubModel(size: number): TapModel & { calls: number } {
  const stub = {
    calls: 0,
    options: { inputSize: size },
    tapNames: () => ['l1', 'l2'],
    forward(x: sg.Tensor) {
      stub.calls++;
      return { output: sg.zeros(x.shape), taps: { l1: x, l2: sg.concat([x, x], 1) } };
    },
  };
  return stub;
}

describe('latentReference', () => {
  it('mean map, latent scale and residual scale on known training images', async () => {
    const S = 4;
    const train = [new Float32Array(S * S), new Float32Array(S * S).fill(0.5)];
    const ref = await latentReference(stubModel(S), train);
    expect(ref.layers).toEqual(['l2']);
    expect(Array.from(ref.meanMaps.l2).every((v) => Math.abs(v - 0.25) < 1e-7)).toBe(true);
    expect(ref.latentScales.l2).toBeCloseTo(0.25, 7); // |x - 0.25| = 0.25 everywhere
    expect(ref.residualScale).toBeCloseTo(128 / Math.SQRT2, 5); // residuals 0 and round(127.5) = 128
    expect(ref.notes).toEqual([]);
    const flat = await latentReference(stubModel(S), [new Float32Array(S * S)]);
    expect(flat.notes.length).toBe(2); // both scales degenerate -> 1
    expect(flat.latentScales.l2).toBe(1);
    expect(flat.residualScale).toBe(1);
  });
});

describe('latent and combined maps', () => {
  it('a latent map is |up(mu) - m| in residual units (times s_R / s_i); the combined map averages it with the residual', () => {
    const ref: LatentReference = {
      layers: ['l6'], size: 2, meanMaps: { l6: Float32Array.from([0, 1, 0, 1]) }, latentScales: { l6: 2 }, residualScale: 10,
      count: 1, notes: [],
    };
    // A 2x2 map at the reference size: no resizing.
    expect(Array.from(latentMap(Float32Array.from([1, -1, 0.5, 1]), 2, 2, ref, 'l6'))).toEqual([5, 10, 2.5, 0]);
    // A 1x1 map is spread over the 2x2 grid first.
    expect(Array.from(latentMap(Float32Array.from([0.5]), 1, 1, ref, 'l6'))).toEqual([2.5, 2.5, 2.5, 2.5]);
    expect(() => latentMap(Float32Array.from([0]), 1, 1, ref, 'l7')).toThrow(/the reference has no layer 'l7' \(it has l6\)/);
    // (R + L1 + L2) / 3
    expect(Array.from(combinedMap(Float32Array.from([3, 0]), [Float32Array.from([1, 2]), Float32Array.from([2, 1])]))).toEqual([2, 1]);
    expect(Array.from(combinedMap(Float32Array.from([3, 0]), []))).toEqual([3, 0]);
  });
});

describe('evaluateCategory', () => {
  const S = 8;
  /** A mask with a rectangle [y0, y1) x [x0, x1). */
  const rect = (y0: number, y1: number, x0: number, x1: number): Uint8Array => {
    const m = new Uint8Array(S * S);
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * S + x] = 1;
    return m;
  };

  it('a stub whose residual equals the mask gives image and pixel AUROC 1', async () => {
    const good = (): TestSample => ({ image: new Float32Array(S * S), label: 'good', mask: null });
    const defect = (label: string, mask: Uint8Array): TestSample => ({ image: Float32Array.from(mask), label, mask });
    const test = [good(), defect('crack', rect(1, 3, 1, 5)), good(), defect('scratch', rect(4, 5, 0, 8)), good(), defect('crack', rect(5, 8, 5, 8))];
    const rng = new sg.Rng(3);
    const trainGood = Array.from({ length: 4 }, () => Float32Array.from({ length: S * S }, () => rng.uniform(0, 0.02)));
    const seen: string[][] = [];
    const model = stubModel(S);
    const live = sg.memory().tensors;
    const r = await evaluateCategory(model, test, trainGood, {
      batchSize: 4,
      onMaps: (i, _s, maps) => {
        seen[i] = Object.keys(maps);
        expect(Object.values(maps).every((m) => m.length === S * S)).toBe(true);
        if (i === 1) expect(Array.from(maps.residual)).toEqual(Array.from(test[1].mask!, (v) => 255 * v));
      },
    });
    expect(sg.memory().tensors).toBe(live);
    expect(model.calls).toBe(1 + 2); // one batch of training images, two test batches
    expect(r.mapKinds).toEqual(['residual', 'l2', 'combined']);
    expect(seen).toHaveLength(6);
    expect(seen[0]).toEqual(r.mapKinds);
    expect(r.counts).toEqual({ good: 3, defective: 3, perDefect: { crack: 2, scratch: 1 }, pixels: 6 * S * S, defectPixels: 8 + 8 + 9 });
    for (const kind of r.mapKinds) {
      for (const norm of ['l1', 'l2', 'linf'] as const) {
        expect(r.image[kind][norm].all).toBe(1);
        expect(Object.keys(r.image[kind][norm].perDefect)).toEqual(['crack', 'scratch']);
        expect(r.image[kind][norm].perDefect).toEqual({ crack: 1, scratch: 1 });
      }
      expect(r.pixel[kind]).toBe(1);
    }
    expect(r.image.residual.l0.all).toBe(1); // good residuals are all zero
    expect(r.headlineNorm).toBe('l2');
    expect(r.scores.map((s) => s.label)).toEqual(['good', 'crack', 'good', 'scratch', 'good', 'crack']);
    expect(r.scores[1].scores.residual).toEqual({ l0: 8, l1: (8 * 255) / 64, l2: Math.sqrt((8 * 255 * 255) / 64), linf: 255 });
    expect(r.scores[0].scores.residual).toEqual({ l0: 0, l1: 0, l2: 0, linf: 0 });
  });

  it('an inverted detector scores 0, and defective images without masks leave the pixel AUROC', async () => {
    // Defective images darker than good ones: the zero-output stub gives them smaller residuals.
    const test: TestSample[] = [
      { image: new Float32Array(S * S).fill(0.8), label: 'good', mask: null },
      { image: new Float32Array(S * S).fill(0.2), label: 'hole', mask: rect(0, 2, 0, 2) },
      { image: new Float32Array(S * S).fill(0.1), label: 'hole', mask: null },
    ];
    const r = await evaluateCategory(stubModel(S), test, [new Float32Array(S * S).fill(0.5)]);
    expect(r.image.residual.l2.all).toBe(0);
    expect(r.image.residual.l2.perDefect).toEqual({ hole: 0 });
    expect(r.counts.pixels).toBe(2 * S * S);
    // Residual constant per image: negatives 64 pixels at 204 (good) + 60 at 51, positives 4 at 51 (tied
    // with 60 negatives): U = 4 * 60 / 2, AUROC = 120 / (4 * 124).
    expect(r.pixel.residual).toBeCloseTo(120 / (4 * 124), 12);
    expect(r.notes.some((n) => /without a mask/.test(n))).toBe(true);
  });

  it('refuses a test set without good or without defective images', async () => {
    const only: TestSample[] = [{ image: new Float32Array(S * S), label: 'good', mask: null }];
    await expect(evaluateCategory(stubModel(S), only, [new Float32Array(S * S)])).rejects.toThrow(/needs good \('good'\) and defective/);
  });

  it('runs a tiny real Autoencoder end to end (decoder taps resized to the image)', async () => {
    const model = buildAutoencoder('esann', { skips: true, inputSize: 32, depth: 3, baseChannels: 4 });
    const imgs = randomImages(5, 32, 7);
    const mask = new Uint8Array(32 * 32);
    mask.fill(1, 100, 200);
    const test: TestSample[] = [
      { image: imgs[0], label: 'good', mask: null },
      { image: imgs[1], label: 'good', mask: null },
      { image: imgs[2], label: 'stain', mask },
    ];
    const live = sg.memory().tensors;
    const r = await evaluateCategory(model, test, imgs.slice(3), { batchSize: 2 });
    expect(sg.memory().tensors).toBe(live);
    expect(model.training).toBe(true);
    expect(r.mapKinds).toEqual(['residual', 'l4', 'l5', 'combined']);
    for (const kind of r.mapKinds) {
      for (const norm of NORMS) {
        const a = r.image[kind][norm].all;
        expect(a).toBeGreaterThanOrEqual(0);
        expect(a).toBeLessThanOrEqual(1);
      }
      expect(r.pixel[kind]).toBeGreaterThanOrEqual(0);
      expect(r.pixel[kind]).toBeLessThanOrEqual(1);
    }
    expect(r.reference.latentScales.l4).toBeGreaterThan(0);
    model.dispose();
  });
});
