/**
 * The esann AESc / AE autoencoder (src/models/autoencoder.ts) rebuilt with TensorFlow.js layers
 * (channels-last, NHWC), a copy of skipgrad's weights into it, and the same AdamW training step.
 *
 * tfjs is passed in (not imported) because tfjs-backend-webgpu must be imported after navigator.gpu
 * is installed (see bench/model-worker.ts); the child process imports it dynamically and hands it here.
 *
 * The network, layer by layer (skipgrad name -> tfjs layers):
 *   l1          conv2d k5 s1 'same' (+bias)                       'same' is symmetric for odd k at stride 1
 *   encoder.i   conv2d k5 s2 'valid' (+bias) -> batchNormalization -> leakyReLU(0.01)
 *   decoder.j   conv2dTranspose k5 s2 'valid' -> [output padding 1: zeroPadding2d [[0,1],[0,1]]]
 *               -> per-channel bias -> batchNormalization -> leakyReLU(0.01) -> [+ encoder twin, j >= 1]
 *   out         conv2d k5 s1 'same' (+bias) -> sigmoid
 *
 * Output padding: tfjs's conv2dTranspose layer has no output_padding. A 'valid' stride-2 transposed
 * conv gives (n-1)*2+k; PyTorch's output_padding=1 adds one row/column at the bottom/right that
 * receives NO input contribution (its index (n-1)*2+k would need kernel tap k) but DOES receive the
 * bias. So "conv2dTranspose with bias, then zero-pad" is wrong by the bias on that row/column
 * (checked in test/bench-parity.test.ts); the construction here is transposed conv WITHOUT bias ->
 * zero-pad -> add the bias, which matches skipgrad's convTranspose2d exactly. Where output padding is 0
 * the conv2dTranspose layer carries the bias itself.
 *
 * Weight layouts (skipgrad -> tfjs), both by the permutation (2,3,1,0):
 *   conv2d           [O, I, kH, kW]       -> kernel [kH, kW, I, O]
 *   convTranspose2d  [Cin, Cout, kH, kW]  -> kernel [kH, kW, Cout, Cin]
 * Batch norm: weight/bias/running_mean/running_var -> gamma/beta/movingMean/movingVariance, epsilon 1e-5,
 * momentum 0.9 (tfjs: moving = m*moving + (1-m)*stat, so tfjs 0.9 = PyTorch 0.1). One difference that does
 * not touch the step's output or gradients: tfjs updates the moving variance with the BIASED batch
 * variance, PyTorch (and skipgrad) with the unbiased one.
 *
 * The training step (both sides do this math; see createTfjsTrainer): loss = mean((out - target)^2);
 * gradients of every trainable weight (conv kernels and biases, BN gamma and beta); then AdamW as
 * PyTorch defines it: p *= 1 - lr*wd, then Adam with bias correction,
 * p -= lr * (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps). tfjs side: manual decay + tf.train.adam.
 */
import type * as tfNs from '@tensorflow/tfjs';

export type Tf = typeof tfNs;
type Tensor = tfNs.Tensor;
type SymbolicTensor = tfNs.SymbolicTensor;
type LayerVariable = tfNs.LayerVariable;

export interface TfjsAeOptions {
  skips: boolean;
  inputSize: number;
  baseChannels: number;
  depth?: number;
  kernel?: number;
  inChannels?: number;
  slope?: number;
}

export interface TfjsAutoencoder {
  model: tfNs.LayersModel;
  /** skipgrad state-dict name -> the tfjs weight that holds it (parameters and BN buffers). */
  weights: Map<string, LayerVariable>;
  /** skipgrad names of the trainable parameters, in skipgrad's parameter order. */
  parameterNames: string[];
  /** Spatial side of each encoder tensor (l1 first), as skipgrad's Autoencoder.sizes. */
  sizes: number[];
}

/** A layer that adds a trainable per-channel bias (last axis), for the transposed convs with output padding. */
function channelBiasLayer(tf: Tf, channels: number, name: string): tfNs.layers.Layer {
  class ChannelBias extends tf.layers.Layer {
    static className = 'ChannelBias';
    bias: LayerVariable | null = null;

    override build(): void {
      this.bias = this.addWeight('bias', [channels], 'float32', tf.initializers.zeros());
      this.built = true;
    }

    override call(inputs: Tensor | Tensor[]): Tensor {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      return tf.add(x, this.bias!.read());
    }

    override computeOutputShape(s: tfNs.Shape | tfNs.Shape[]): tfNs.Shape | tfNs.Shape[] {
      return s;
    }
  }
  return new ChannelBias({ name });
}

/** Builds the esann autoencoder with tfjs layers; weights are tfjs's defaults until loadSkipgradWeights. */
export function buildTfjsAutoencoder(tf: Tf, o: TfjsAeOptions): TfjsAutoencoder {
  const depth = o.depth ?? 5, k = o.kernel ?? 5, inCh = o.inChannels ?? 1, slope = o.slope ?? 0.01;
  const weights = new Map<string, LayerVariable>();
  const parameterNames: string[] = [];
  /** Registrations run after the model is built (layers create their weights on first apply). */
  const pending: Array<() => void> = [];
  const conv = (name: string, layer: tfNs.layers.Layer, biasLayer?: tfNs.layers.Layer): void => {
    parameterNames.push(`${name}.weight`, `${name}.bias`);
    pending.push(() => {
      weights.set(`${name}.weight`, layer.weights[0]);
      weights.set(`${name}.bias`, biasLayer ? biasLayer.weights[0] : layer.weights[1]);
    });
  };
  const bn = (name: string, layer: tfNs.layers.Layer): void => {
    parameterNames.push(`${name}.weight`, `${name}.bias`);
    pending.push(() => {
      const [gamma, beta, mean, variance] = layer.weights;
      weights.set(`${name}.weight`, gamma);
      weights.set(`${name}.bias`, beta);
      weights.set(`${name}.running_mean`, mean);
      weights.set(`${name}.running_var`, variance);
    });
  };
  const apply = (layer: tfNs.layers.Layer, x: SymbolicTensor | SymbolicTensor[]): SymbolicTensor => layer.apply(x) as SymbolicTensor;
  const bnLayer = (name: string): tfNs.layers.Layer => tf.layers.batchNormalization({ axis: -1, momentum: 0.9, epsilon: 1e-5, name: `${name}.bn` });

  const input = tf.input({ shape: [o.inputSize, o.inputSize, inCh], name: 'x' });
  const sizes = [o.inputSize];
  const channels = [o.baseChannels];
  const l1 = tf.layers.conv2d({ filters: o.baseChannels, kernelSize: k, strides: 1, padding: 'same', name: 'l1' });
  conv('l1', l1);
  let h = apply(l1, input);
  const enc: SymbolicTensor[] = [h];
  for (let i = 1; i < depth; i++) {
    const next = Math.floor((sizes[i - 1] - k) / 2) + 1;
    if (sizes[i - 1] < k || next < 1) throw new Error(`buildTfjsAutoencoder: input size ${o.inputSize} is too small for depth ${depth}`);
    sizes.push(next);
    channels.push(o.baseChannels * 2 ** i);
    const name = `encoder.${i - 1}`;
    const c = tf.layers.conv2d({ filters: channels[i], kernelSize: k, strides: 2, padding: 'valid', name: `${name}.conv` });
    const b = bnLayer(name);
    conv(`${name}.conv`, c);
    bn(`${name}.bn`, b);
    h = apply(tf.layers.leakyReLU({ alpha: slope }), apply(b, apply(c, h)));
    enc.push(h);
  }
  for (let i = depth - 1; i >= 1; i--) {
    const j = depth - 1 - i;
    const name = `decoder.${j}`;
    const outputPadding = sizes[i - 1] - ((sizes[i] - 1) * 2 + k);
    if (outputPadding < 0 || outputPadding > 1) throw new Error(`buildTfjsAutoencoder: cannot map ${sizes[i]} back to ${sizes[i - 1]}`);
    const ct = tf.layers.conv2dTranspose({ filters: channels[i - 1], kernelSize: k, strides: 2, padding: 'valid', useBias: outputPadding === 0, name: `${name}.conv` });
    h = apply(ct, h);
    let biasLayer: tfNs.layers.Layer | undefined;
    if (outputPadding === 1) {
      h = apply(tf.layers.zeroPadding2d({ padding: [[0, 1], [0, 1]], name: `${name}.pad` }), h);
      biasLayer = channelBiasLayer(tf, channels[i - 1], `${name}.conv.bias`);
      h = apply(biasLayer, h);
    }
    conv(`${name}.conv`, ct, biasLayer);
    const b = bnLayer(name);
    bn(`${name}.bn`, b);
    h = apply(tf.layers.leakyReLU({ alpha: slope }), apply(b, h));
    if (o.skips && j >= 1) h = apply(tf.layers.add({ name: `${name}.skip` }), [h, enc[enc.length - 2 - j]]);
  }
  const out = tf.layers.conv2d({ filters: inCh, kernelSize: k, strides: 1, padding: 'same', name: 'out' });
  conv('out', out);
  const y = apply(tf.layers.activation({ activation: 'sigmoid' }), apply(out, h));
  const model = tf.model({ inputs: input, outputs: y, name: o.skips ? 'AESc' : 'AE' });
  for (const p of pending) p();
  // skipgrad registers a module's own parameters before its children's: l1, encoder.*, decoder.*, out.
  return { model, weights, parameterNames, sizes };
}

/** Row-major transpose of data with shape `shape`: output axis i is input axis perm[i]. */
export function permute(data: ArrayLike<number>, shape: readonly number[], perm: readonly number[]): Float32Array {
  const rank = shape.length;
  const inStrides = new Array<number>(rank);
  let s = 1;
  for (let d = rank - 1; d >= 0; d--) {
    inStrides[d] = s;
    s *= shape[d];
  }
  const outShape = perm.map((p) => shape[p]);
  const step = perm.map((p) => inStrides[p]);
  const out = new Float32Array(s);
  const idx = new Array<number>(rank).fill(0);
  let src = 0;
  for (let i = 0; i < out.length; i++) {
    out[i] = data[src];
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      src += step[d];
      if (idx[d] < outShape[d]) break;
      src -= step[d] * outShape[d];
      idx[d] = 0;
    }
  }
  return out;
}

export const NCHW_TO_NHWC = [0, 2, 3, 1] as const;
export const NHWC_TO_NCHW = [0, 3, 1, 2] as const;
/** conv2d [O,I,kH,kW] -> [kH,kW,I,O] and convTranspose2d [Cin,Cout,kH,kW] -> [kH,kW,Cout,Cin]. */
export const WEIGHT_TO_TF = [2, 3, 1, 0] as const;
export const WEIGHT_FROM_TF = [3, 2, 0, 1] as const;

/** One skipgrad tensor's values (skipgrad layout) by state-dict name. */
export interface NamedArray {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** Converts a skipgrad state-dict entry to tfjs layout (4-D weights permuted; vectors as they are). */
export function toTfLayout(a: NamedArray): { shape: number[]; data: Float32Array } {
  if (a.shape.length === 4) return { shape: WEIGHT_TO_TF.map((p) => a.shape[p]), data: permute(a.data, a.shape, WEIGHT_TO_TF) };
  return { shape: a.shape.slice(), data: Float32Array.from(a.data) };
}

/** Converts a tfjs weight (tfjs layout) back to skipgrad's layout. */
export function fromTfLayout(shape: readonly number[], data: ArrayLike<number>): { shape: number[]; data: Float32Array } {
  if (shape.length === 4) return { shape: WEIGHT_FROM_TF.map((p) => shape[p]), data: permute(data, shape, WEIGHT_FROM_TF) };
  return { shape: shape.slice(), data: Float32Array.from(data) };
}

/** Copies skipgrad's parameters and BN buffers into the tfjs model; every tfjs weight must be covered. */
export function loadSkipgradWeights(tf: Tf, ae: TfjsAutoencoder, state: readonly NamedArray[]): void {
  const seen = new Set<string>();
  for (const a of state) {
    const v = ae.weights.get(a.name);
    if (!v) throw new Error(`loadSkipgradWeights: the tfjs model has no weight for '${a.name}'`);
    const t = toTfLayout(a);
    if (t.shape.length !== v.shape.length || t.shape.some((d, i) => d !== v.shape[i])) {
      throw new Error(`loadSkipgradWeights: '${a.name}' is [${a.shape}] -> [${t.shape}] in tfjs layout, the tfjs weight is [${v.shape}]`);
    }
    tf.tidy(() => {
      v.write(tf.tensor(t.data, t.shape));
    });
    seen.add(a.name);
  }
  const missing = [...ae.weights.keys()].filter((n) => !seen.has(n));
  if (missing.length) throw new Error(`loadSkipgradWeights: no values for ${missing.join(', ')}`);
}

/** NCHW values -> an NHWC tfjs tensor. */
export function nhwcTensor(tf: Tf, data: ArrayLike<number>, nchw: readonly number[]): tfNs.Tensor4D {
  return tf.tensor4d(permute(data, nchw, NCHW_TO_NHWC), NCHW_TO_NHWC.map((p) => nchw[p]) as [number, number, number, number]);
}

export interface AdamWOptions {
  lr: number;
  weightDecay: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
}

export interface TfjsTrainer {
  /** One step: forward (BN in training mode), MSE loss, gradients, AdamW update. Returns the loss (kept). */
  step(x: Tensor, target: Tensor): tfNs.Scalar;
  /** Loss and gradients (skipgrad name -> tfjs-layout gradient) of the named parameters (default: all), updating nothing but BN moving stats. */
  gradients(x: Tensor, target: Tensor, names?: readonly string[]): { loss: tfNs.Scalar; output: Tensor; grads: Map<string, Tensor> };
  /** The AdamW update alone, from gradients by skipgrad name (tfjs layout); the step calls the same code. */
  applyGradients(grads: Map<string, Tensor>): void;
  optimizer: tfNs.AdamOptimizer;
}

/**
 * The training step. AdamW as PyTorch (and skipgrad's Adam with decoupled: true) computes it:
 * gradients at the current weights; p *= 1 - lr*wd; then tfjs's Adam, which is
 * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps).
 */
export function createTfjsTrainer(tf: Tf, ae: TfjsAutoencoder, o: AdamWOptions): TfjsTrainer {
  const optimizer = tf.train.adam(o.lr, o.beta1 ?? 0.9, o.beta2 ?? 0.999, o.eps ?? 1e-8);
  const params = ae.parameterNames.map((n) => ae.weights.get(n)!);
  // LayerVariable.read() gives the underlying tf.Variable (typed as a Tensor).
  const vars = params.map((p) => p.read() as tfNs.Variable);
  const byVarName = new Map(ae.parameterNames.map((n, i) => [vars[i].name, n]));
  const lossFn = (x: Tensor, target: Tensor, keep?: (out: Tensor) => void) => (): tfNs.Scalar => {
    const out = ae.model.apply(x, { training: true }) as Tensor;
    keep?.(tf.keep(out));
    return tf.mean(tf.squaredDifference(out, target)) as tfNs.Scalar;
  };
  const decay = 1 - o.lr * o.weightDecay;
  const update = (grads: tfNs.NamedTensorMap): void => {
    tf.tidy(() => {
      if (decay !== 1) for (const v of vars) v.assign(tf.mul(v, decay));
      optimizer.applyGradients(Object.entries(grads).map(([name, tensor]) => ({ name, tensor })));
    });
  };
  const byName = new Map(ae.parameterNames.map((n, i) => [n, vars[i].name]));
  return {
    optimizer,
    step(x, target) {
      return tf.tidy(() => {
        const { value, grads } = tf.variableGrads(lossFn(x, target), vars);
        update(grads);
        return value;
      });
    },
    applyGradients(grads) {
      const named: tfNs.NamedTensorMap = {};
      for (const [n, g] of grads) {
        const v = byName.get(n);
        if (!v) throw new Error(`applyGradients: '${n}' is not a trainable parameter of the tfjs model`);
        named[v] = g;
      }
      update(named);
    },
    gradients(x, target, names) {
      const wanted = names ? names.map((n) => {
        const v = ae.weights.get(n);
        if (!v || !ae.parameterNames.includes(n)) throw new Error(`gradients: '${n}' is not a trainable parameter of the tfjs model`);
        return v.read() as tfNs.Variable;
      }) : vars;
      let output: Tensor | null = null;
      const { value, grads } = tf.variableGrads(lossFn(x, target, (o) => (output = o)), wanted);
      return { loss: value, output: output!, grads: new Map(Object.entries(grads).map(([k, g]) => [byVarName.get(k) ?? k, g])) };
    },
  };
}

/**
 * Waits until the device has computed `outs`: reads back one element of each (skipgrad's side waits with a sync,
 * which reads nothing back; reading whole outputs would charge tfjs for the transfer). Async: tfjs-webgpu's dataSync
 * needs OffscreenCanvas, which Node lacks.
 */
export async function waitFor(tf: Tf, outs: Array<ReturnType<Tf['tensor']>>): Promise<void> {
  const firsts = tf.tidy(() => outs.map((t) => tf.slice(tf.reshape(t, [-1]), 0, Math.min(1, t.size))));
  await Promise.all(firsts.map((t) => t.data()));
  tf.dispose(firsts);
}
