/**
 * The autoencoder family of "Don't skip the skips": AESc (with skip connections) and AE (the same
 * network without them). One builder; the presets follow the authors' two implementations
 * (docs/reference-facts.md §1):
 *
 *   esann (PyTorch code): l1 = conv kxk stride 1 'same' (no BN, no activation); then depth-1 blocks
 *     [conv kxk stride 2 'valid' -> BN -> LeakyReLU] (l2..l5); decoder [transposed conv kxk stride 2,
 *     padding 0, output padding chosen so each decoder tensor matches its encoder twin -> BN -> LeakyReLU]
 *     (l6..l9), the encoder tensor of the same size ADDED after the activation, except at the first decoder
 *     level (l4 is never added); output conv kxk 'same' -> sigmoid.
 *   icpr (Keras code): depth blocks [conv kxk stride 2 'same' -> BN -> LeakyReLU(0.3)] (l1..l6); decoder:
 *     upsample x2 of the bottleneck, then depth-1 times [conv kxk 'same' -> BN -> LeakyReLU -> add the encoder
 *     tensor of the same size -> upsample x2] (l7..l11); output conv kxk 'same' -> sigmoid.
 *
 * forward() returns the output and the named activation taps l1..lN in forward order (decoder taps
 * are taken after the addition), which the cosine analysis reads.
 */
import type { Backend } from '../engine/backend.js';
import { add } from '../engine/ops/elementwise.js';
import { upsampleNearest2d } from '../engine/ops/upsample.js';
import { expectOptions } from '../engine/ops/util.js';
import { BatchNorm2d, Conv2d, ConvTranspose2d } from '../engine/nn/layers.js';
import { Module } from '../engine/nn/module.js';
import { leakyRelu, sigmoid } from '../engine/ops/elementwise.js';
import { Rng } from '../engine/random.js';
import type { Tensor } from '../engine/tensor.js';
import { shapeStr, type DType } from '../engine/dtype.js';

export type Preset = 'esann' | 'icpr';

export interface AutoencoderOptions {
  /** AESc (true) or AE (false). */
  skips: boolean;
  /** esann: number of encoder levels counting l1 (5 gives l1..l5); icpr: number of stride-2 blocks (6). */
  depth: number;
  kernel: number;
  baseChannels: number;
  inputSize: number;
  inChannels: number;
  /** 'transposed': strided transposed convolutions (esann); 'upsample': nearest upsampling + conv (icpr). */
  decoder: 'transposed' | 'upsample';
  slope: number;
  seed: number;
  backend?: string | Backend;
  /** The parameters' and buffers' dtype (default float32; float64 on the CPU for a reference or a gradient check of the whole network). */
  dtype?: DType;
}

export const PRESETS: Record<Preset, Omit<AutoencoderOptions, 'skips' | 'seed' | 'backend' | 'dtype'>> = {
  esann: { depth: 5, kernel: 5, baseChannels: 16, inputSize: 256, inChannels: 1, decoder: 'transposed', slope: 0.01 },
  icpr: { depth: 6, kernel: 5, baseChannels: 16, inputSize: 256, inChannels: 1, decoder: 'upsample', slope: 0.3 },
};

const AUTOENCODER_OPTIONS: Record<keyof AutoencoderOptions, true> = {
  skips: true, depth: true, kernel: true, baseChannels: true, inputSize: true, inChannels: true, decoder: true, slope: true, seed: true, backend: true, dtype: true,
};

/** Options of a preset, with overrides (e.g. a smaller inputSize). */
export function presetOptions(preset: Preset, overrides: Partial<AutoencoderOptions> & { skips: boolean }): AutoencoderOptions {
  const base = PRESETS[preset];
  if (!base) throw new Error(`unknown preset '${preset as string}' (expected esann or icpr)`);
  return { ...base, seed: 0, ...overrides };
}

/** A conv (or transposed conv) -> batch norm -> LeakyReLU block. */
class Block extends Module {
  readonly conv: Conv2d | ConvTranspose2d;
  readonly bn: BatchNorm2d;

  constructor(conv: Conv2d | ConvTranspose2d, channels: number, readonly slope: number, o: { backend?: string | Backend; dtype?: DType }) {
    super();
    this.conv = this.child('conv', conv);
    this.bn = this.child('bn', new BatchNorm2d(channels, o));
  }

  forward(x: Tensor): Tensor {
    return leakyRelu(this.bn.forward(this.conv.forward(x)), this.slope);
  }
}

export interface AutoencoderOutput {
  output: Tensor;
  /** l1..lN in forward order. */
  taps: Record<string, Tensor>;
}

export class Autoencoder extends Module {
  readonly options: AutoencoderOptions;
  /** Spatial side of each encoder tensor (l1 first). */
  readonly sizes: number[];
  readonly channels: number[];
  private readonly first: Conv2d | null;
  private readonly encoder: Block[] = [];
  private readonly decoder: Block[] = [];
  private readonly out: Conv2d;

  constructor(options: AutoencoderOptions) {
    super();
    expectOptions('Autoencoder', options, AUTOENCODER_OPTIONS);
    this.options = options;
    const { depth, kernel: k, baseChannels, inputSize, inChannels, decoder, slope, backend, dtype } = options;
    for (const [name, v] of [['depth', depth], ['kernel', k], ['baseChannels', baseChannels], ['inputSize', inputSize], ['inChannels', inChannels]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`Autoencoder: ${name} must be a positive integer, got ${v}`);
    }
    const rng = new Rng(options.seed);
    const init = { rng, backend, dtype };
    const norm = { backend, dtype };
    try {
      this.sizes = encoderSizes(options);
    } catch (e) {
      throw new Error(`Autoencoder: ${(e as Error).message}`);
    }
    this.channels = [];
    if (decoder === 'transposed') {
      // l1: stride-1 'same' conv, then depth-1 'valid' stride-2 blocks: n -> floor((n-k)/2)+1.
      this.channels.push(baseChannels);
      this.first = this.child('l1', new Conv2d(inChannels, baseChannels, k, { padding: 'same', ...init }));
      for (let i = 1; i < depth; i++) {
        this.channels.push(baseChannels * 2 ** i);
        this.encoder.push(this.child(`encoder.${i - 1}`, new Block(new Conv2d(this.channels[i - 1], this.channels[i], k, { stride: 2, padding: 'valid', ...init }), this.channels[i], slope, norm)));
      }
      // Decoder: transposed convs back up; (n-1)*2 + k + outputPadding must equal the encoder twin's size.
      for (let i = depth - 1; i >= 1; i--) {
        const from = this.sizes[i], to = this.sizes[i - 1];
        const outputPadding = to - ((from - 1) * 2 + k);
        if (outputPadding < 0 || outputPadding > 1) throw new Error(`Autoencoder: cannot map ${from} back to ${to} with kernel ${k}, stride 2`);
        this.decoder.push(this.child(`decoder.${depth - 1 - i}`, new Block(
          new ConvTranspose2d(this.channels[i], this.channels[i - 1], k, { stride: 2, padding: 0, outputPadding, ...init }), this.channels[i - 1], slope, norm)));
      }
    } else {
      // icpr: depth 'same' stride-2 blocks: n -> ceil(n/2); the input side must halve cleanly.
      this.first = null;
      for (let i = 0; i < depth; i++) {
        this.channels.push(baseChannels * 2 ** i);
        this.encoder.push(this.child(`encoder.${i}`, new Block(new Conv2d(i === 0 ? inChannels : this.channels[i - 1], this.channels[i], k, { stride: 2, padding: 'same', ...init }), this.channels[i], slope, norm)));
      }
      for (let i = depth - 2; i >= 0; i--) {
        this.decoder.push(this.child(`decoder.${depth - 2 - i}`, new Block(new Conv2d(this.channels[i + 1], this.channels[i], k, { padding: 'same', ...init }), this.channels[i], slope, norm)));
      }
    }
    this.out = this.child('out', new Conv2d(baseChannels, inChannels, k, { padding: 'same', ...init }));
  }

  /** Names of the activation taps, in forward order. */
  tapNames(): string[] {
    const n = (this.first ? 1 : 0) + this.encoder.length + this.decoder.length;
    return Array.from({ length: n }, (_, i) => `l${i + 1}`);
  }

  forward(x: Tensor): AutoencoderOutput {
    const { inChannels, inputSize, skips } = this.options;
    if (x.rank !== 4 || x.shape[1] !== inChannels || x.shape[2] !== inputSize || x.shape[3] !== inputSize) {
      throw new Error(`Autoencoder: input has shape ${shapeStr(x.shape)}, expected [batch, ${inChannels}, ${inputSize}, ${inputSize}]`);
    }
    const taps: Tensor[] = [];
    const enc: Tensor[] = [];
    let h = x;
    if (this.first) {
      h = this.first.forward(h);
      enc.push(h);
      taps.push(h);
    }
    for (const b of this.encoder) {
      h = b.forward(h);
      enc.push(h);
      taps.push(h);
    }
    if (this.options.decoder === 'transposed') {
      // Decoder level j maps enc[last-j] to the size of enc[last-j-1]; skips from enc[last-j-1] for j >= 1.
      this.decoder.forEach((b, j) => {
        h = b.forward(h);
        if (skips && j >= 1) h = add(h, enc[enc.length - 2 - j]);
        taps.push(h);
      });
      h = this.out.forward(h);
    } else {
      h = upsampleNearest2d(h, 2);
      this.decoder.forEach((b, j) => {
        h = b.forward(h);
        if (skips) h = add(h, enc[enc.length - 2 - j]);
        taps.push(h);
        h = upsampleNearest2d(h, 2);
      });
      h = this.out.forward(h);
    }
    const output = sigmoid(h);
    return { output, taps: Object.fromEntries(taps.map((t, i) => [`l${i + 1}`, t])) };
  }
}

/**
 * The spatial side of each encoder tensor (l1 first) for this input size, depth, kernel and decoder. Throws, saying
 * why, when the input size does not fit: esann's 'valid' stride-2 convs shrink n to floor((n - k)/2) + 1 and need
 * n >= k at each level (61 at least for depth 5, kernel 5: the error says); icpr's 'same' ones halve n, which must divide by 2^depth.
 */
export function encoderSizes(o: Pick<AutoencoderOptions, 'inputSize' | 'depth' | 'kernel' | 'decoder'>): number[] {
  const { inputSize, depth, kernel: k } = o;
  const sizes: number[] = [];
  if (o.decoder === 'transposed') {
    sizes.push(inputSize);
    for (let i = 1; i < depth; i++) {
      const prev = sizes[i - 1];
      const next = Math.floor((prev - k) / 2) + 1;
      if (prev < k || next < 1) {
        // The least size that fits: the deepest side is at least 1, and a side r needs 2(r - 1) + k above it.
        let least = 1;
        for (let j = 1; j < depth; j++) least = 2 * (least - 1) + k;
        throw new Error(`input size ${inputSize} is too small for depth ${depth} with kernel ${k} ('valid' stride-2 convs shrink ${sizes.join(' -> ')} -> nothing); the least size that fits is ${least}`);
      }
      sizes.push(next);
    }
  } else {
    let n = inputSize;
    for (let i = 0; i < depth; i++) {
      if (n % 2 !== 0 || n < 2) throw new Error(`input size ${inputSize} must be divisible by 2^${depth} for the upsample decoder (depth ${depth})`);
      n /= 2;
      sizes.push(n);
    }
  }
  return sizes;
}

/** Why a network with these options cannot take its inputSize (encoderSizes' reason), or null when it can. */
export function inputSizeProblem(o: Pick<AutoencoderOptions, 'inputSize' | 'depth' | 'kernel' | 'decoder'>): string | null {
  try {
    encoderSizes(o);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * Why batch norm in training mode cannot run this network on `batch` images ("deepest layer is 1x1, and ..."), or
 * null: at a 1x1 deepest map, one image gives each channel a single value, whose variance is 0.
 */
export function trainingBatchProblem(o: Pick<AutoencoderOptions, 'inputSize' | 'depth' | 'kernel' | 'decoder'>, batch: number): string | null {
  const deepest = encoderSizes(o).at(-1)!;
  return batch * deepest * deepest < 2 ? 'deepest layer is 1x1, and batch norm in training needs more than one value per channel' : null;
}

/** AESc (skips: true) or AE (skips: false) from a preset. */
export function buildAutoencoder(preset: Preset, overrides: Partial<AutoencoderOptions> & { skips: boolean }): Autoencoder {
  return new Autoencoder(presetOptions(preset, overrides));
}
