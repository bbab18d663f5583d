/**
 * The experiments end to end, as the CLI runs them. Every step reads what earlier steps wrote under
 * `out` and writes machine-readable JSON next to every figure:
 *
 *   <out>/data/                              the built-in synthetic data set (when --data is not given)
 *   <out>/<category>/<model>/                best.safetensors, last.safetensors, history.json, curves.svg
 *   <out>/<category>/<model>/previous-run/   a finished run's files while a run that starts over replaces them
 *   <out>/<category>/<model>/failed-run/     the files of a run that failed replacing a finished one (replace-run.ts)
 *   <out>/<category>/cosine.json, fig3.svg, fig3.png        the paper's Fig. 3 (cosine similarity per layer)
 *   <out>/<category>/fig2.json, fig2.png                    the paper's Fig. 2 (channel-mean maps)
 *   <out>/<category>/evaluation.json                        anomaly detection: image and pixel AUROCs
 *   <out>/report.html, <out>/run.json                       everything, self-contained
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Backend } from '../engine/backend.js';
import { describeChoice, useBackend } from '../engine/backends.js';
import { makeDirs, writeFileAtomic } from '../engine/io/atomic.js';
import { readSafetensors } from '../engine/io/safetensors.js';
import { noGrad } from '../engine/mode.js';
import type { ScheduleName } from '../engine/optim/schedules.js';
import { Rng } from '../engine/random.js';
import { fromArray, scope, zeros } from '../engine/tensor.js';
import { Autoencoder, PRESETS, presetOptions, type AutoencoderOptions, type Preset } from '../models/autoencoder.js';
import { channelMeanAsync, cosineAnalysis, trend, type CosineAnalysis, type TrendStatement, type TrendVerdict } from './analysis.js';
import { listCategories, loadCategory, splitTrainValidation, type Category } from './data/mvtec.js';
import { generateDataset, SYNTHETIC_CATEGORIES, syntheticCategoryServes } from './data/synthetic.js';
import { evaluateCategory, HEADLINE_NORM, type CategoryEvaluation } from './evaluate.js';
import { activationMapsPng, cosineFigure, lineChart, svgToPng } from './figures.js';
import { renderReport, type CategoryReport, type ReportData } from './report.js';
import { addStain } from './stain.js';
import { PREVIOUS_RUN, replacingRun } from './replace-run.js';
import { loadCheckpoint, trainAutoencoder, type TrainResult } from './train.js';

export type ModelName = 'aesc' | 'ae';

export interface RunConfig {
  backend: 'auto' | 'cpu' | 'webgpu';
  /** An MVTec AD root; null = the built-in synthetic set under <out>/data. */
  data: string | null;
  out: string;
  categories: string[];
  models: ModelName[];
  preset: Preset;
  size: number;
  /** Base channel count (the preset's is 16); null = 16 at sizes >= 128, 8 below (the quick default run). */
  channels: number | null;
  epochs: number;
  batch: number;
  lr: number;
  seed: number;
  /** Images used from train/good (before the 20% validation hold-out); 0 = all. */
  trainLimit: number;
  /** Images used per test sub-folder; 0 = all. */
  testLimit: number;
  /** Clean/stained pairs for the cosine analysis. */
  analysisImages: number;
  progress: boolean;
  /** Continue each model from its last.safetensors instead of starting over. */
  resume: boolean;
  /** Learning-rate schedule (schedules.ts) and optimizer of training. */
  schedule: ScheduleName;
  optimizer: 'adamw' | 'adam';
}

export const DEFAULTS: RunConfig = {
  backend: 'auto', data: null, out: 'runs/latest', categories: ['woven', 'disc'], models: ['aesc', 'ae'], preset: 'esann',
  size: 64, channels: null, epochs: 8, batch: 8, lr: 0.005, seed: 0, trainLimit: 40, testLimit: 6, analysisImages: 16, progress: true, resume: false,
  schedule: 'onecycle', optimizer: 'adamw',
};

const log = (msg: string): void => {
  process.stderr.write(`${msg}\n`);
};

export function modelDir(cfg: RunConfig, category: string, model: ModelName): string {
  return path.join(cfg.out, category, model);
}

/** Where the data set is: --data, or the built-in synthetic set's folder under --out. */
export function dataFolder(cfg: Pick<RunConfig, 'data' | 'out'>): string {
  return cfg.data ?? path.join(cfg.out, 'data');
}

/**
 * The data root: the given MVTec AD folder, or the synthetic set (generated on first use). trainOnly: the caller
 * reads train/good alone, so a synthetic set made with other test counts serves it as it is.
 */
export function dataRoot(cfg: RunConfig, trainOnly = false): string {
  if (cfg.data) {
    if (!fs.existsSync(cfg.data)) throw new Error(`--data ${cfg.data}: no such folder (expected an MVTec AD root with <category>/train/good/*.png)`);
    return cfg.data;
  }
  const root = dataFolder(cfg);
  // Made again where it is missing, incomplete (an interrupted run), or made for another size, seed or image counts.
  const { testGoodCount, testDefectCount, ...forTraining } = syntheticOptions(cfg);
  const want = trainOnly ? forTraining : { ...forTraining, testGoodCount, testDefectCount };
  const stale = cfg.categories.filter((c) => !syntheticCategoryServes(path.join(root, c), want));
  if (stale.length > 0) generateSynthetic(cfg, root, stale);
  return root;
}

/** What the synthetic set must be for a run: its size and seed, and the image counts its limits ask for. */
function syntheticOptions(cfg: Pick<RunConfig, 'size' | 'seed' | 'trainLimit' | 'testLimit'>): { size: number; seed: number; trainCount: number; testGoodCount: number; testDefectCount: number } {
  return {
    size: Math.max(cfg.size, 64), seed: cfg.seed,
    trainCount: cfg.trainLimit > 0 ? cfg.trainLimit : 80, testGoodCount: Math.max(cfg.testLimit, 4), testDefectCount: Math.max(Math.ceil(cfg.testLimit / 2), 2),
  };
}

export function generateSynthetic(cfg: Pick<RunConfig, 'size' | 'seed' | 'trainLimit' | 'testLimit'>, root: string, categories: string[]): void {
  const known = SYNTHETIC_CATEGORIES.map((c) => c.name);
  const unknown = categories.filter((c) => !known.includes(c));
  if (unknown.length) throw new Error(`no built-in synthetic category ${unknown.join(', ')} (available: ${known.join(', ')}; or pass --data with an MVTec AD root)`);
  log(`generating synthetic data (${categories.join(', ')}) in ${root}`);
  generateDataset(root, { categories, ...syntheticOptions(cfg) });
}

export function loadData(cfg: RunConfig, category: string, trainOnly = false): Category {
  const root = dataRoot(cfg, trainOnly);
  const available = listCategories(root);
  if (!available.includes(category)) {
    const isDir = (d: string): boolean => fs.statSync(path.join(root, d), { throwIfNoEntry: false })?.isDirectory() === true;
    if (isDir('train') && isDir('test')) {
      throw new Error(`--data ${root} is a category folder (it holds train/ and test/), not the data set's root: pass its parent, --data ${path.join(root, '..')} --category ${path.basename(path.resolve(root))}`);
    }
    throw new Error(`category '${category}' is not in ${root} (found: ${available.join(', ') || 'none'})`);
  }
  return loadCategory(root, category, cfg.size, {
    ...(cfg.trainLimit > 0 ? { limitTrain: cfg.trainLimit } : {}), ...(cfg.testLimit > 0 ? { limitTest: cfg.testLimit } : {}), trainOnly,
  });
}

/** The base channel count a run uses. */
export function baseChannels(cfg: RunConfig): number {
  return cfg.channels ?? (cfg.size >= 128 ? 16 : 8);
}

function buildModel(cfg: RunConfig, model: ModelName, backend: Backend): Autoencoder {
  return new Autoencoder(presetOptions(cfg.preset, { skips: model === 'aesc', inputSize: cfg.size, baseChannels: baseChannels(cfg), seed: cfg.seed, backend }));
}

/** How a model is named in figures and tables. */
export const MODEL_LABEL: Record<ModelName, string> = { aesc: 'AESc', ae: 'AE' };

/** A word as a POSIX shell reads it: as it is when it is plain, else in single quotes. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Where a run that started over was killed, what to do about the last finished run it set aside (replace-run.ts); else null. */
function unfinishedRun(cfg: RunConfig, category: string, model: ModelName): string | null {
  const previous = path.join(modelDir(cfg, category, model), PREVIOUS_RUN);
  return fs.existsSync(previous)
    ? `${previous} holds the last finished run, which a run that started over (and was interrupted) is replacing: 'skipgrad train --resume' with that run's options finishes it, or move the files in ${previous} back to keep the finished one`
    : null;
}

/** The checkpoint a trained model is loaded from; throws, saying how to make it, when it is not there. */
function checkpointFile(cfg: RunConfig, category: string, model: ModelName): string {
  const file = path.join(modelDir(cfg, category, model), 'best.safetensors');
  if (!fs.existsSync(file)) {
    const unfinished = unfinishedRun(cfg, category, model);
    if (unfinished) throw new Error(`${file} not found: ${unfinished}`);
    // The options that decide which model fits this run (checkpointOptions checks them), as the user gave them.
    const given = [
      ...(cfg.data !== null ? ['--data', cfg.data] : []),
      ...(cfg.preset !== DEFAULTS.preset ? ['--preset', cfg.preset] : []),
      ...(cfg.size !== DEFAULTS.size ? ['--size', String(cfg.size)] : []),
      ...(cfg.channels !== null ? ['--channels', String(cfg.channels)] : []),
    ];
    const command = ['skipgrad', 'train', '--category', category, '--model', model, ...given, '--out', cfg.out].map(shellWord).join(' ');
    throw new Error(`${file} not found: train it first (${command})`);
  }
  return file;
}

/** Checks that the models' checkpoints exist and fit this run before a step loads (or generates) any data. */
function requireCheckpoints(cfg: RunConfig, category: string, models: readonly ModelName[]): void {
  for (const m of models) {
    const { file } = checkpointOptions(cfg, category, m);
    const unfinished = unfinishedRun(cfg, category, m);
    if (unfinished) log(`note: ${file} is the unfinished run's; ${unfinished}`);
  }
}

/** The options a model's checkpoint was made with; throws unless it is that model (AESc or AE) at this run's size. */
function checkpointOptions(cfg: RunConfig, category: string, model: ModelName): { file: string; options: AutoencoderOptions; stored: ReturnType<typeof readSafetensors> } {
  const file = checkpointFile(cfg, category, model);
  const stored = readSafetensors(file);
  const { metadata } = stored;
  let options: AutoencoderOptions;
  try {
    options = JSON.parse(metadata.options ?? '') as AutoencoderOptions;
  } catch {
    throw new Error(`${file}: checkpoint has no model options in its metadata`);
  }
  if (options.skips !== (model === 'aesc')) {
    throw new Error(`${file}: this checkpoint is ${options.skips ? 'AESc (with skips)' : 'AE (no skips)'}, but it sits where the ${MODEL_LABEL[model]} model belongs`);
  }
  if (options.inputSize !== cfg.size) {
    throw new Error(`${file}: the model was trained at --size ${options.inputSize}, this run asks for --size ${cfg.size}; pass --size ${options.inputSize} (or train again at ${cfg.size})`);
  }
  const preset = PRESETS[cfg.preset];
  if (options.depth !== preset.depth || options.decoder !== preset.decoder || options.kernel !== preset.kernel) {
    const other = (Object.keys(PRESETS) as Preset[]).find((p) => PRESETS[p].depth === options.depth && PRESETS[p].decoder === options.decoder && PRESETS[p].kernel === options.kernel);
    throw new Error(`${file}: the model is ${other ? `the ${other} network` : `a network of depth ${options.depth}`}, this run asks for --preset ${cfg.preset}${other ? `; pass --preset ${other}` : ''}`);
  }
  if (cfg.channels !== null && options.baseChannels !== cfg.channels) {
    throw new Error(`${file}: the model has ${options.baseChannels} base channels, this run asks for --channels ${cfg.channels}; leave --channels out (it is read from the checkpoint) or pass ${options.baseChannels}`);
  }
  return { file, options, stored };
}

/** Rebuilds a trained model from its checkpoint (the options are stored in it). */
export async function loadModel(cfg: RunConfig, category: string, model: ModelName, backend: Backend): Promise<Autoencoder> {
  const { file, options, stored } = checkpointOptions(cfg, category, model);
  const m = new Autoencoder({ ...options, backend });
  await loadCheckpoint(file, m, null, stored);
  m.eval();
  return m;
}

function writeJson(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value, (_, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n');
}

export async function trainStep(cfg: RunConfig, category: string, model: ModelName, backend: Backend): Promise<TrainResult> {
  const data = loadData(cfg, category, true);
  if (data.train.length < 2) {
    const folder = path.join(dataFolder(cfg), category, 'train', 'good');
    const why = '20% of them, at least one, are held out for validation';
    if (data.train.length === 0) throw new Error(`train: no training images: ${folder} holds no .png files`);
    throw new Error(cfg.trainLimit === 1
      ? `train: --train-limit 1 leaves one training image; at least 2 of ${folder} are needed (${why})`
      : `train: ${folder} holds one .png image; training needs at least 2 (${why})`);
  }
  const { train, validation } = splitTrainValidation(data.train.map((s) => s.image), 0.2, new Rng(cfg.seed + 17));
  const dir = modelDir(cfg, category, model);
  makeDirs(dir);
  const m = buildModel(cfg, model, backend);
  const last = path.join(dir, 'last.safetensors');
  const label = `${category}/${model}`;
  const resumable = fs.existsSync(last);
  if (cfg.resume) log(resumable ? `${label}: resuming from ${last}` : `${label}: no ${last} to resume from; starting at epoch 1`);
  if (cfg.resume && fs.existsSync(path.join(dir, PREVIOUS_RUN))) {
    log(`${label}: ${path.join(dir, PREVIOUS_RUN)} holds the last finished run, which the run resumed here started over to replace: it is removed when this run finishes (move its files back first to keep it instead)`);
  }
  const t0 = performance.now();
  // history.json and curves.svg follow the checkpoints epoch by epoch, so an interrupted run's files agree.
  const writeHistory = (result: TrainResult): void => {
    const seconds = (performance.now() - t0) / 1000;
    writeJson(path.join(dir, 'history.json'), { category, model, preset: cfg.preset, size: cfg.size, trainImages: train.length, validationImages: validation.length, seconds, ...result });
    writeFileAtomic(path.join(dir, 'curves.svg'), curvesSvg({ [model]: result }, category));
  };
  // A run that starts over keeps the previous one's files aside until it finishes, and puts them back if it fails.
  let epochsRun = 0;
  const result = await replacingRun(dir, RUN_FILES, !cfg.resume, async () => {
    const r = await trainAutoencoder({
      model: m, train, validation, epochs: cfg.epochs, batchSize: cfg.batch, lr: cfg.lr, seed: cfg.seed,
      schedule: cfg.schedule, optimizer: cfg.optimizer, checkpointDir: dir, progress: cfg.progress, label, resume: cfg.resume,
      onEpoch: (r) => {
        epochsRun++;
        writeHistory(r);
      },
      log,
    });
    if (epochsRun > 0) writeHistory(r);
    return r;
  }, (message) => log(`${label}: starting over${resumable ? ' (--resume would continue the run there instead)' : ''}; ${message}`)).finally(() => m.dispose());
  const seconds = (performance.now() - t0) / 1000;
  // A resumed run that had all its epochs already trained nothing: trainAutoencoder said so, and history.json stays.
  if (epochsRun > 0) log(`${label}: best validation PSNR ${result.bestPsnr.toFixed(2)} dB at epoch ${result.bestEpoch} (${seconds.toFixed(1)} s)`);
  return result;
}

/** The files of a model's training run in its folder (replace-run.ts sets them aside as one). */
const RUN_FILES = ['best.safetensors', 'last.safetensors', 'history.json', 'curves.svg'] as const;

function curvesSvg(results: Partial<Record<ModelName, TrainResult>>, category: string): string {
  const colors: Record<ModelName, string> = { ae: '#1f77b4', aesc: '#ff7f0e' };
  const series = Object.entries(results).flatMap(([name, r]) => [
    { name: `${MODEL_LABEL[name as ModelName]} train loss`, x: r!.history.map((h) => h.epoch), y: r!.history.map((h) => h.trainLoss), color: colors[name as ModelName] },
  ]);
  return lineChart(series, { title: `${category}: training loss (MSE, stained input -> clean target)`, xLabel: 'epoch', yLabel: 'loss', logY: true });
}

function psnrSvg(results: Partial<Record<ModelName, TrainResult>>, category: string): string {
  const colors: Record<ModelName, string> = { ae: '#1f77b4', aesc: '#ff7f0e' };
  const series = Object.entries(results).map(([name, r]) => ({
    name: `${MODEL_LABEL[name as ModelName]} validation PSNR`, x: r!.history.map((h) => h.epoch), y: r!.history.map((h) => h.valPsnr), color: colors[name as ModelName],
  }));
  return lineChart(series, { title: `${category}: validation PSNR (stained validation images)`, xLabel: 'epoch', yLabel: 'PSNR (dB)' });
}

/**
 * Clean test-good images and one stained version of each (fixed seed), for the analysis and Fig. 2; where there
 * are fewer test-good images than --analysis-images, training images fill up (`fromTrain` says how many).
 */
function analysisPairs(cfg: RunConfig, data: Category): { clean: Float32Array[]; stained: Float32Array[]; fromTrain: number } {
  const good = data.test.filter((s) => s.label === 'good').map((s) => s.image);
  const pool = good.length >= cfg.analysisImages ? good : [...good, ...data.train.map((s) => s.image)];
  const clean = pool.slice(0, cfg.analysisImages);
  const rng = new Rng(cfg.seed + 4242);
  return { clean, stained: clean.map((im) => addStain(im, cfg.size, cfg.size, rng).image), fromTrain: Math.max(0, clean.length - good.length) };
}

/** How the analysis pairs were drawn, for titles: '16 images (6 test-good, 10 training)'. */
function pairsLabel(n: number, fromTrain: number): string {
  return fromTrain > 0 ? `${n} images (${n - fromTrain} test-good, ${fromTrain} training)` : `${n} test-good images`;
}

export interface AnalyzeResult {
  layers: string[];
  sizes: string[];
  ae: CosineAnalysis;
  aesc: CosineAnalysis;
  trend: TrendStatement;
}

export async function analyzeStep(cfg: RunConfig, category: string, backend: Backend): Promise<AnalyzeResult> {
  requireCheckpoints(cfg, category, ['ae', 'aesc']);
  const data = loadData(cfg, category);
  const { clean, stained, fromTrain } = analysisPairs(cfg, data);
  const results: Partial<Record<ModelName, CosineAnalysis>> = {};
  let layers: string[] = [];
  let sizes: string[] = [];
  for (const name of ['ae', 'aesc'] as const) {
    const m = await loadModel(cfg, category, name, backend);
    results[name] = await cosineAnalysis(m, clean, stained, { batchSize: cfg.batch });
    layers = m.tapNames();
    sizes = tapSizes(m);
    m.dispose();
  }
  // A 1x1 map (esann's bottleneck at 64x64) has one value: its cosine is only a sign, 1 for every pair.
  const exclude = Object.fromEntries(layers.filter((_, i) => sizes[i] === '1x1').map((l) => [l, 'a 1x1 map, whose cosine is only a sign']));
  const t = trend(results.ae!, results.aesc!, { exclude });
  const out: AnalyzeResult = { layers, sizes, ae: results.ae!, aesc: results.aesc!, trend: t };
  const dir = path.join(cfg.out, category);
  writeJson(path.join(dir, 'cosine.json'), { category, images: clean.length, imagesFromTrain: fromTrain, ...out });
  const svg = cosineFigure({
    layers, sizes,
    ae: Object.fromEntries(layers.map((l) => [l, results.ae![l].values])),
    aesc: Object.fromEntries(layers.map((l) => [l, results.aesc![l].values])),
  }, `${category}: cos(mu_i(clean), mu_i(stained)) per layer, ${pairsLabel(clean.length, fromTrain)}`);
  writeFileAtomic(path.join(dir, 'fig3.svg'), svg);
  writeFileAtomic(path.join(dir, 'fig3.png'), svgToPng(svg));
  log(`${category}: ${t.sentence}`);
  return out;
}

function tapSizes(m: Autoencoder): string[] {
  const size = m.options.inputSize;
  return noGrad(() => scope(() => {
    const { taps } = m.forward(zeros([1, m.options.inChannels, size, size], { backend: m.parameters()[0].backend }));
    return m.tapNames().map((n) => `${taps[n].shape[2]}x${taps[n].shape[3]}`);
  }));
}

export async function visualizeStep(cfg: RunConfig, category: string, backend: Backend): Promise<Buffer> {
  requireCheckpoints(cfg, category, ['aesc', 'ae']);
  const data = loadData(cfg, category);
  const { clean, stained } = analysisPairs(cfg, { ...data });
  const pair = [clean[0], stained[0]];
  const rows: Array<{ label: string; maps: Array<{ data: Float32Array; h: number; w: number }> }> = [];
  let columns: string[] = [];
  const json: Record<string, unknown> = {};
  for (const name of ['aesc', 'ae'] as const) {
    const m = await loadModel(cfg, category, name, backend);
    const maps = await (async () => {
      const taps = noGrad(() => scope(() => {
        const x = fromArray(Float32Array.from([...pair[0], ...pair[1]]), [2, 1, cfg.size, cfg.size], { backend });
        return m.forward(x).taps;
      }));
      const out: Record<string, Float32Array[]> = {};
      for (const [k, t] of Object.entries(taps)) {
        out[k] = await channelMeanAsync(t);
        t.dispose();
      }
      return { names: m.tapNames(), shapes: Object.fromEntries(Object.entries(taps).map(([k, t]) => [k, t.shape.slice(2)])), out };
    })();
    columns = maps.names.map((n) => `${n.replace('l', 'μ')} ${maps.shapes[n][0]}x${maps.shapes[n][1]}`);
    for (const [i, kind] of (['clean', 'stained'] as const).entries()) {
      rows.push({ label: `${MODEL_LABEL[name]} ${kind}`, maps: maps.names.map((n) => ({ data: maps.out[n][i], h: maps.shapes[n][0], w: maps.shapes[n][1] })) });
    }
    json[name] = Object.fromEntries(maps.names.map((n) => [n, { shape: maps.shapes[n], clean: Array.from(maps.out[n][0]), stained: Array.from(maps.out[n][1]) }]));
    m.dispose();
  }
  const dir = path.join(cfg.out, category);
  const png = activationMapsPng(rows, columns, { title: `${category}: channel-mean maps μ_i of a clean and a stained image` });
  writeFileAtomic(path.join(dir, 'fig2.png'), png);
  writeJson(path.join(dir, 'fig2.json'), { category, rows: rows.map((r) => r.label), columns, maps: json });
  return png;
}

export async function evaluateStep(cfg: RunConfig, category: string, backend: Backend): Promise<Record<ModelName, CategoryEvaluation>> {
  requireCheckpoints(cfg, category, cfg.models);
  const data = loadData(cfg, category);
  const out: Partial<Record<ModelName, CategoryEvaluation>> = {};
  for (const name of cfg.models) {
    const m = await loadModel(cfg, category, name, backend);
    out[name] = await evaluateCategory(m, data.test, data.train.map((s) => s.image), { batchSize: cfg.batch });
    m.dispose();
  }
  writeJson(path.join(cfg.out, category, 'evaluation.json'), { category, headlineNorm: HEADLINE_NORM, ...out });
  return out as Record<ModelName, CategoryEvaluation>;
}

/** Everything for every category and both models, then the report. */
export async function reproduce(cfg: RunConfig): Promise<string> {
  const t0 = performance.now();
  const backend = await useBackend(cfg.backend);
  log(`backend: ${await describeChoice(cfg.backend, backend)}`);
  const categories: CategoryReport[] = [];
  const verdicts: TrendVerdict[] = [];
  const trained: Record<string, Partial<Record<ModelName, TrainResult>>> = {};
  for (const category of cfg.categories) {
    trained[category] = {};
    for (const model of cfg.models) trained[category][model] = await trainStep(cfg, category, model, backend);
    const analysis = await analyzeStep(cfg, category, backend);
    const fig2 = await visualizeStep(cfg, category, backend);
    const evaluation = await evaluateStep(cfg, category, backend);
    verdicts.push(analysis.trend.verdict);
    categories.push(categoryReport(category, analysis, fig2, evaluation, trained[category]));
  }
  const seconds = (performance.now() - t0) / 1000;
  const report: ReportData = {
    title: "Don't skip the skips: a reproduction with skipgrad",
    subtitle: `preset ${cfg.preset}, ${cfg.size}x${cfg.size}, ${cfg.data ? `MVTec AD at ${cfg.data}` : 'built-in synthetic data'}`,
    generatedAt: new Date().toISOString(),
    machine: `${os.cpus()[0]?.model ?? 'cpu'} x ${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
    backend: backend.describe(),
    runTimeSeconds: seconds,
    // channels: the count the run used (null in cfg means "the default for the size").
    config: Object.entries({ ...cfg, channels: baseChannels(cfg) }).map(([k, v]): [string, string | number | boolean | null] => [k, Array.isArray(v) ? v.join(', ') : (v as string | number | boolean | null)]),
    notes: [
      'AESc = the autoencoder with skip connections, AE = the same network without them. Similarities compare the channel-mean map of each layer for a clean image and a stained version of it.',
      `Image scores: all four norms of the residual map are reported; ${HEADLINE_NORM} was declared in advance as the headline.`,
      'Anomaly maps: "residual" is the paper\'s |x - x̂|. The rows named after decoder layers (l6 ... l9) and "combined" take the paper\'s perspective of decoder channel-mean maps as anomaly maps of their own; how they are built (the distance to the good training images\' mean map, scaled to the residual\'s units) is this reproduction\'s choice, not the paper\'s method (src/experiments/evaluate.ts).',
      ...(cfg.data ? [] : ['These results come from the built-in synthetic data set and a short training run: they exercise the method, they do not reproduce the paper\'s numbers.']),
    ],
    overall: overallTrend(cfg.categories, verdicts),
    categories,
  };
  const file = path.join(cfg.out, 'report.html');
  writeFileAtomic(file, renderReport(report));
  writeJson(path.join(cfg.out, 'run.json'), { config: cfg, seconds, backend: backend.describe(), verdicts: Object.fromEntries(cfg.categories.map((c, i) => [c, verdicts[i]])) });
  return file;
}

/**
 * The run's statement on the paper's trend ("the distances ... for AESc increase as we go deeper in the network
 * while those for AE decrease") from the categories' verdicts (analysis.ts, trend()).
 */
export function overallTrend(categories: readonly string[], verdicts: readonly TrendVerdict[]): { statement: string; verdict: TrendVerdict } {
  const claim = "the paper's trend (the discrepancy between clean and stained maps growing with depth for AESc, falling for AE)";
  const where = (v: TrendVerdict): string[] => categories.filter((_, i) => verdicts[i] === v);
  const [yes, partly, no, na] = [where('yes'), where('partly'), where('no'), where('n/a')];
  if (yes.length === categories.length) return { statement: `In every category (${categories.join(', ')}) ${claim} appears.`, verdict: 'yes' };
  if (na.length === categories.length) {
    return { statement: `Whether ${claim} appears cannot be determined here (too few image pairs or layers).`, verdict: 'n/a' };
  }
  if (no.length === categories.length) return { statement: `In no category (${categories.join(', ')}) does ${claim} appear.`, verdict: 'no' };
  const parts = [yes.length ? `it appears in ${yes.join(', ')}` : '', partly.length ? `in part (AESc's grows, more than AE's, but AE's does not fall) in ${partly.join(', ')}` : '',
    no.length ? `not in ${no.join(', ')}` : '', na.length ? `it cannot be determined in ${na.join(', ')}` : ''].filter(Boolean);
  return { statement: `Of ${claim}: ${parts.join('; ')}.`, verdict: yes.length + partly.length > 0 ? 'partly' : 'no' };
}

function categoryReport(category: string, analysis: AnalyzeResult, fig2: Buffer, evaluation: Record<ModelName, CategoryEvaluation>, trained: Partial<Record<ModelName, TrainResult>>): CategoryReport {
  const kind = SYNTHETIC_CATEGORIES.find((c) => c.name === category)?.kind;
  const first = Object.values(evaluation)[0];
  const defectKinds = Object.keys(first.counts.perDefect);
  const rows = Object.entries(evaluation).flatMap(([model, ev]) => ev.mapKinds.map((mapKind) => ({
    mapKind: `${MODEL_LABEL[model as ModelName]} ${mapKind}`,
    all: Object.fromEntries(ev.norms.map((n) => [n, ev.image[mapKind][n].all])),
    perDefect: Object.fromEntries(defectKinds.map((d) => [d, Object.fromEntries(ev.norms.map((n) => [n, ev.image[mapKind][n].perDefect[d]]))])),
  })));
  return {
    name: category,
    ...(kind ? { kind } : {}),
    trend: { statement: analysis.trend.sentence, verdict: analysis.trend.verdict },
    trainingCurves: [
      { title: 'Training loss', svg: curvesSvg(trained, category) },
      { title: 'Validation PSNR', svg: psnrSvg(trained, category) },
    ],
    fig2: { title: 'Fig. 2: channel-mean maps', png: fig2, caption: 'Rows: AESc clean, AESc stained, AE clean, AE stained; columns: μ_i = mean over channels of layer l_i.' },
    cosine: {
      layers: analysis.layers, sizes: analysis.sizes,
      ae: Object.fromEntries(analysis.layers.map((l) => [l, analysis.ae[l].values])),
      aesc: Object.fromEntries(analysis.layers.map((l) => [l, analysis.aesc[l].values])),
    },
    imageAuroc: { norms: [...first.norms], headlineNorm: first.headlineNorm, defectKinds, counts: { good: first.counts.good, defects: first.counts.perDefect }, rows },
    pixelAuroc: { rows: Object.entries(evaluation).flatMap(([model, ev]) => ev.mapKinds.map((mapKind) => ({ mapKind: `${MODEL_LABEL[model as ModelName]} ${mapKind}`, auroc: ev.pixel[mapKind] }))) },
  };
}
