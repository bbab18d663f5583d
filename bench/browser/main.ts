/**
 * The browser bench (bench/browser/index.html, `npm run bench:browser`): one esann training step of AESc and AE,
 * skipgrad on WebGPU against TensorFlow.js on WebGPU, in the same browser, from the same initial weights on the
 * same batch (bench/model-tfjs.ts builds the tfjs network and copies skipgrad's weights into it; bench/model-step.ts
 * is the step both sides of the Node bench use). tfjs comes from its own script tags (the `tf` global).
 *
 * Query parameters: size (default 128), batch (8), steps (timed steps after one warm-up, 5; 0: report the warm-up
 * step's time, pipeline compiles included), models (AESc,AE).
 * The result: a table in the page, and window.benchResult = { adapter, settings, rows } for scripts.
 */
import * as sg from '../../src/engine/index.js';
import { buildAutoencoder } from '../../src/models/autoencoder.js';
import { buildTfjsAutoencoder, createTfjsTrainer, loadSkipgradWeights, nhwcTensor, type NamedArray, type Tf } from '../model-tfjs.js';
import { median, skipgradStepper, tfjsStep } from '../model-step.js';

// The page's globals (the project compiles without the DOM library): tfjs's script tag, and the little DOM used.
declare const tf: Tf;
declare const document: { getElementById(id: string): { textContent: string | null } | null };
declare const location: { search: string };
declare const window: Record<string, unknown>;

interface Row { model: string; impl: string; stepMs: number; firstLoss: number; ratio?: number }

/** The page's settings from its query string; a parameter it does not know, or a bad value, is an error naming it. */
function readSettings(): { size: number; batch: number; steps: number; models: string[]; lr: number; weightDecay: number } {
  const params = new URLSearchParams(location.search);
  const known = ['size', 'batch', 'steps', 'models'];
  for (const name of params.keys()) {
    if (!known.includes(name)) throw new Error(`?${name}=: unknown parameter (expected ${known.join(', ')})`);
  }
  const int = (name: string, dflt: number, min = 1): number => {
    const v = Number(params.get(name) ?? dflt);
    if (!Number.isInteger(v) || v < min) throw new Error(`?${name}= expects an integer >= ${min}, got '${params.get(name)}'`);
    return v;
  };
  const models = (params.get('models') ?? 'AESc,AE').split(',');
  for (const model of models) {
    if (model !== 'AESc' && model !== 'AE') throw new Error(`?models=: unknown model '${model}' (expected AESc and/or AE)`);
  }
  return { size: int('size', 128), batch: int('batch', 8), steps: int('steps', 5, 0), models, lr: 1e-3, weightDecay: 1e-2 };
}
/** Read in main(), so that a bad query string is reported on the page (and in window.benchResult) like any error. */
let settings: ReturnType<typeof readSettings>;
const out = document.getElementById('out')!;
const say = (s: string): void => { out.textContent += `${s}\n`; };

async function time(step: () => Promise<number>): Promise<{ stepMs: number; firstLoss: number }> {
  const t0 = performance.now();
  const firstLoss = await step(); // warm-up: pipelines compile; its loss is the one from the shared initial weights
  const warmupMs = performance.now() - t0;
  const times: number[] = [];
  for (let i = 0; i < settings.steps; i++) {
    const t0 = performance.now();
    await step();
    times.push(performance.now() - t0);
  }
  return { stepMs: times.length > 0 ? median(times) : warmupMs, firstLoss };
}

async function main(): Promise<void> {
  settings = readSettings();
  const be = await sg.useBackend('webgpu');
  if (!(await tf.setBackend('webgpu'))) throw new Error('tfjs: the webgpu backend did not initialise');
  await tf.ready();
  say(`skipgrad: ${be.describe()}`);
  const { size, batch } = settings;
  const shape = [batch, 1, size, size];
  const rng = new sg.Rng(0);
  const xData = Float32Array.from({ length: batch * size * size }, () => rng.next());
  const targetData = Float32Array.from({ length: batch * size * size }, () => rng.next());
  const rows: Row[] = [];
  for (const model of settings.models) {
    const net = buildAutoencoder('esann', { skips: model === 'AESc', inputSize: size, baseChannels: 16, seed: 0, backend: be }).train();
    const state: NamedArray[] = [];
    for (const [name, t] of net.stateDict()) state.push({ name, shape: [...t.shape], data: Float32Array.from(await t.data()) });
    const x = sg.fromArray(xData, shape, { backend: be }).keep();
    const target = sg.fromArray(targetData, shape, { backend: be }).keep();
    const stepper = skipgradStepper(be, net, x, target, settings);
    const ours = { model, impl: 'skipgrad-webgpu', ...(await time(() => stepper.step())) };
    stepper.dispose();
    for (const t of [x, target]) t.dispose();
    net.dispose();
    say(`${model} skipgrad-webgpu: ${ours.stepMs.toFixed(1)} ms per step`);

    const ae = buildTfjsAutoencoder(tf, { skips: model === 'AESc', inputSize: size, baseChannels: 16 });
    loadSkipgradWeights(tf, ae, state);
    const trainer = createTfjsTrainer(tf, ae, settings);
    const tx = nhwcTensor(tf, xData, shape);
    const tt = nhwcTensor(tf, targetData, shape);
    const lastWeight = ae.weights.get('out.bias')!;
    const theirs = { model, impl: 'tfjs-webgpu', ...(await time(() => tfjsStep(trainer, tx, tt, lastWeight))) };
    tf.dispose([tx, tt]);
    ae.model.dispose();
    say(`${model} tfjs-webgpu: ${theirs.stepMs.toFixed(1)} ms per step`);
    rows.push(ours, { ...theirs, ratio: theirs.stepMs / ours.stepMs });
  }
  say('');
  say('model  implementation   step (median)  images/s  tfjs/skipgrad  first loss');
  for (const r of rows) {
    say(`${r.model.padEnd(6)} ${r.impl.padEnd(16)} ${`${r.stepMs.toFixed(1)} ms`.padEnd(14)} ${(batch / (r.stepMs / 1000)).toFixed(1).padEnd(9)} `
      + `${(r.ratio === undefined ? '1x' : `${r.ratio.toFixed(2)}x`).padEnd(14)} ${r.firstLoss.toFixed(6)}`);
  }
  window.benchResult = { adapter: be.describe(), settings, rows };
}

main().catch((e: Error) => {
  say(`error: ${e.message}`);
  window.benchResult = { error: String(e.stack ?? e) };
});
