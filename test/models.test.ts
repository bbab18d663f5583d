import { describe, expect, it } from 'vitest';
import * as sg from '../src/engine/index.js';
import { Autoencoder, buildAutoencoder, encoderSizes, PRESETS, presetOptions } from '../src/models/autoencoder.js';

function tapShapes(m: Autoencoder, size: number): Record<string, number[]> {
  return sg.noGrad(() => sg.scope(() => {
    const { output, taps } = m.forward(sg.uniform([1, 1, size, size], 0, 1, { rng: new sg.Rng(1) }));
    expect(output.shape).toEqual([1, 1, size, size]);
    const v = output.dataSync();
    expect(v.every((x) => x > 0 && x < 1)).toBe(true); // sigmoid output
    return Object.fromEntries(Object.entries(taps).map(([k, t]) => [k, t.shape.slice(1)]));
  }));
}

describe('autoencoder presets', () => {
  it('esann at 256 reproduces the table of docs/reference-facts.md §1 (C,H,W per tensor)', () => {
    const m = buildAutoencoder('esann', { skips: true });
    expect(tapShapes(m, 256)).toEqual({
      l1: [16, 256, 256], l2: [32, 126, 126], l3: [64, 61, 61], l4: [128, 29, 29], l5: [256, 13, 13],
      l6: [128, 29, 29], l7: [64, 61, 61], l8: [32, 126, 126], l9: [16, 256, 256],
    });
    m.dispose();
  });

  it('icpr at 256: six stride-2 blocks to a 4x4x512 bottleneck, upsample + conv decoder', () => {
    const m = buildAutoencoder('icpr', { skips: true });
    expect(tapShapes(m, 256)).toEqual({
      l1: [16, 128, 128], l2: [32, 64, 64], l3: [64, 32, 32], l4: [128, 16, 16], l5: [256, 8, 8], l6: [512, 4, 4],
      l7: [256, 8, 8], l8: [128, 16, 16], l9: [64, 32, 32], l10: [32, 64, 64], l11: [16, 128, 128],
    });
    m.dispose();
  });

  it('esann output paddings are 0, 0, 1, 1 (l6..l9) and state-dict names are PyTorch-style', () => {
    const m = buildAutoencoder('esann', { skips: true, inputSize: 256 });
    const names = [...m.stateDict().keys()];
    expect(names).toContain('l1.weight');
    expect(names).toContain('encoder.0.conv.weight');
    expect(names).toContain('encoder.0.bn.running_mean');
    expect(names).toContain('decoder.3.conv.bias');
    expect(names).toContain('out.weight');
    const dec = m.namedParameters().filter(([n]) => /^decoder\.\d\.conv\.weight$/.test(n)).map(([, t]) => t.shape);
    expect(dec).toEqual([[256, 128, 5, 5], [128, 64, 5, 5], [64, 32, 5, 5], [32, 16, 5, 5]]);
    m.dispose();
  });

  it('stateValues copies every parameter and buffer by name, and loadStateDict restores them', async () => {
    const m = buildAutoencoder('esann', { skips: true, inputSize: 61, baseChannels: 2 });
    const saved = await m.stateValues();
    expect([...saved.keys()]).toEqual([...m.stateDict().keys()]);
    const w = m.stateDict().get('l1.weight')!;
    expect(saved.get('l1.weight')!.shape).toEqual(w.shape);
    const before = Array.from(w.dataSync());
    await m.loadStateDict(new Map([...saved].map(([k, v]) => [k, { shape: v.shape, data: new Float32Array(v.data.length).fill(3) }])));
    expect(Array.from(saved.get('l1.weight')!.data)).toEqual(before); // a copy, not the tensor's storage
    await m.loadStateDict(saved);
    expect(Array.from(w.dataSync())).toEqual(before);
    m.dispose();
  });

  it('other input sizes: the builder computes output paddings; too small a size is a clear error', () => {
    for (const size of [64, 128, 97]) {
      const m = new Autoencoder(presetOptions('esann', { skips: true, inputSize: size, depth: 4, baseChannels: 4 }));
      const shapes = tapShapes(m, size);
      expect(shapes.l1).toEqual([4, size, size]);
      expect(shapes[`l${m.tapNames().length}`]).toEqual([4, size, size]);
      m.dispose();
    }
    expect(() => buildAutoencoder('esann', { skips: true, inputSize: 32 })).toThrow(/input size 32 is too small for depth 5/);
    expect(() => buildAutoencoder('icpr', { skips: true, inputSize: 96 })).toThrow(/input size 96 must be divisible by 2\^6/);
    // A misspelt option is an error, not the preset's value.
    expect(() => buildAutoencoder('esann', { skips: true, inputsize: 64 } as never)).toThrow("Autoencoder: unknown option 'inputsize' (expected skips, depth, kernel, baseChannels, inputSize, inChannels, decoder, slope, seed, backend, dtype)");
  });

  it('encoderSizes: the encoder sides without building the network (the benches check --size with it)', () => {
    expect(encoderSizes(PRESETS.esann)).toEqual([256, 126, 61, 29, 13]);
    expect(encoderSizes(PRESETS.icpr)).toEqual([128, 64, 32, 16, 8, 4]);
    expect(encoderSizes({ ...PRESETS.esann, inputSize: 61 })).toEqual([61, 29, 13, 5, 1]);
    expect(() => encoderSizes({ ...PRESETS.esann, inputSize: 60 })).toThrow("input size 60 is too small for depth 5 with kernel 5 ('valid' stride-2 convs shrink 60 -> 28 -> 12 -> 4 -> nothing); the least size that fits is 61");
    // The least size the error names fits, and the one below it does not, for other depths and kernels too.
    for (const [depth, kernel] of [[3, 3], [4, 5], [6, 7], [2, 4]]) {
      const o = { depth, kernel, decoder: 'transposed' as const };
      let least = 0;
      try {
        encoderSizes({ ...o, inputSize: 1 });
      } catch (e) {
        least = Number(/the least size that fits is (\d+)/.exec((e as Error).message)?.[1]);
      }
      expect(encoderSizes({ ...o, inputSize: least }).at(-1)).toBeGreaterThanOrEqual(1);
      expect(() => encoderSizes({ ...o, inputSize: least - 1 })).toThrow(/too small/);
    }
    for (const size of [61, 64, 97]) {
      const m = buildAutoencoder('esann', { skips: true, inputSize: size, baseChannels: 1 }).eval(); // eval: at 61 the deepest map is 1x1 (one value per channel at batch 1)
      expect(m.sizes).toEqual(encoderSizes({ ...PRESETS.esann, inputSize: size }));
      const shapes = tapShapes(m, size);
      expect(m.sizes.map((_, i) => shapes[`l${i + 1}`][1])).toEqual(m.sizes);
      m.dispose();
    }
  });

  it('AE is the same network without the additions: same parameters, different activations', () => {
    const opts = { inputSize: 64, depth: 4, baseChannels: 4, seed: 3 };
    const aesc = buildAutoencoder('esann', { skips: true, ...opts });
    const ae = buildAutoencoder('esann', { skips: false, ...opts });
    expect(aesc.parameterCount()).toBe(ae.parameterCount());
    const [a, b] = [aesc, ae].map((m) => sg.noGrad(() => sg.scope(() => {
      const { taps } = m.forward(sg.uniform([1, 1, 64, 64], 0, 1, { rng: new sg.Rng(2) }));
      return [taps.l5.dataSync(), taps.l6.dataSync(), taps.l7.dataSync()];
    })));
    expect(Array.from(a[0])).toEqual(Array.from(b[0])); // l5 (first decoder level, no skip) identical
    expect(Array.from(a[1])).not.toEqual(Array.from(b[1])); // l6 = l5-level decoder + l2 in AESc
    aesc.dispose();
    ae.dispose();
  });

  it('Kaiming-uniform initialisation bounds, and train/eval reaches every batch norm', () => {
    const m = buildAutoencoder('esann', { skips: true, inputSize: 64, depth: 3, baseChannels: 4 });
    for (const [name, t] of m.namedParameters()) {
      if (!name.endsWith('conv.weight') && name !== 'l1.weight' && name !== 'out.weight') continue;
      // PyTorch's fan-in is weight.size(1) x k x k for conv2d ([out, in, k, k]) and transposed conv ([in, out, k, k]) alike.
      const fanIn = t.shape[1] * t.shape[2] * t.shape[3];
      const bound = 1 / Math.sqrt(fanIn);
      const v = Array.from(t.dataSync());
      expect(Math.max(...v.map(Math.abs))).toBeLessThanOrEqual(bound);
      expect(Math.max(...v.map(Math.abs))).toBeGreaterThan(bound * 0.5);
    }
    // Every batch norm follows the mode: in eval() a forward pass leaves all running means as they are, in train() it
    // moves each of them.
    const means = (): Map<string, number[]> => new Map(m.namedBuffers().filter(([n]) => n.endsWith('running_mean')).map(([n, t]) => [n, Array.from(t.dataSync())]));
    const forward = (): void => sg.noGrad(() => sg.scope(() => void m.forward(sg.uniform([2, 1, 64, 64], 0, 1, { rng: new sg.Rng(3) }))));
    const before = means();
    expect(before.size).toBe(4); // depth 3: two encoder and two decoder blocks with batch norm (l1 and out have none)
    m.eval();
    expect(m.training).toBe(false);
    forward();
    expect(means()).toEqual(before);
    m.train();
    expect(m.training).toBe(true);
    forward();
    for (const [name, after] of means()) expect(after, name).not.toEqual(before.get(name));
    m.dispose();
  });
});
