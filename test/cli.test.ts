/**
 * The command line end to end: a tiny `skipgrad reproduce` writes the report, the JSON next to every figure,
 * and valid PNG and SVG files; bad arguments get clear errors; `trace` writes Perfetto JSON.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'skipgrad-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { env: { ...process.env, SKIPGRAD_BACKEND: 'cpu', ...env }, maxBuffer: 1 << 26 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

function expectPng(file: string): void {
  const png = PNG.sync.read(fs.readFileSync(file));
  expect(png.width).toBeGreaterThan(100);
  expect(png.height).toBeGreaterThan(100);
}

function expectSvg(file: string): void {
  const s = fs.readFileSync(file, 'utf8');
  expect(s).toMatch(/^(<\?xml[^>]*>\s*)?<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  expect(s.trim().endsWith('</svg>')).toBe(true);
  expect((s.match(/<svg\b/g) ?? []).length).toBe((s.match(/<\/svg>/g) ?? []).length);
}

describe('skipgrad CLI', () => {
  it('reproduce (tiny) writes the report, JSON beside every figure, valid PNG and SVG', async () => {
    const out = path.join(tmp, 'run');
    const r = await cli(['reproduce', '--backend', 'cpu', '--out', out, '--size', '64', '--channels', '4', '--epochs', '1',
      '--train-limit', '6', '--test-limit', '2', '--analysis-images', '8', '--category', 'woven', '--no-progress']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/report: .*report\.html/);
    const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(html).toContain('woven');
    // A verdict (8 pairs is the fewest the trend statistic takes), in the badge and in the statement.
    expect(html).toMatch(/class="badge[^"]*">trend (appears|partly appears|does not appear)</);
    expect(html).toMatch(/The paper&#39;s claimed trend (appears|appears in part|does not appear): the discrepancy 1 - cos/);
    expect(html).toContain('data:image/png;base64,');
    expect(html).not.toMatch(/<script/);
    const dir = path.join(out, 'woven');
    for (const f of ['cosine.json', 'fig2.json', 'evaluation.json', 'aesc/history.json', 'ae/history.json']) {
      expect(() => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')), f).not.toThrow();
    }
    expectPng(path.join(dir, 'fig2.png'));
    expectPng(path.join(dir, 'fig3.png'));
    expectSvg(path.join(dir, 'fig3.svg'));
    expectSvg(path.join(dir, 'aesc', 'curves.svg'));
    const cos = JSON.parse(fs.readFileSync(path.join(dir, 'cosine.json'), 'utf8')) as { layers: string[]; aesc: Record<string, { values: number[] }> };
    expect(cos.layers).toEqual(['l1', 'l2', 'l3', 'l4', 'l5', 'l6', 'l7', 'l8', 'l9']);
    expect(cos.aesc.l1.values).toHaveLength(8);
    const ev = JSON.parse(fs.readFileSync(path.join(dir, 'evaluation.json'), 'utf8')) as { headlineNorm: string; aesc: { image: Record<string, Record<string, { all: number }>> } };
    expect(ev.headlineNorm).toBe('l2');
    const a = ev.aesc.image.residual.l2.all;
    expect(a).toBeGreaterThanOrEqual(0);
    expect(a).toBeLessThanOrEqual(1);
    expect(fs.existsSync(path.join(dir, 'aesc', 'best.safetensors'))).toBe(true);
  });

  it('trace writes Chrome trace JSON of one training step', async () => {
    const out = path.join(tmp, 'trace');
    const r = await cli(['trace', '--backend', 'cpu', '--out', out, '--size', '64', '--channels', '2', '--batch', '2']);
    expect(r.code, r.stderr).toBe(0);
    const t = JSON.parse(fs.readFileSync(path.join(out, 'trace.json'), 'utf8')) as { traceEvents: Array<{ ph: string; name: string; cat: string; tid: number; args?: Record<string, unknown> }> };
    const ops = t.traceEvents.filter((e) => e.ph === 'X');
    expect(ops.some((e) => e.name === 'conv2d' && e.cat === 'forward')).toBe(true);
    // The step train takes: AdamW with train's weight decay (0.01), beta1 0.9.
    expect(ops.find((e) => e.name === 'adam')?.args?.attrs).toMatchObject({ lr: 0.005, beta1: 0.9, weightDecay: 0.01, decoupled: true });
    expect(ops.some((e) => e.name === 'conv2dGradWeight' && e.cat === 'backward')).toBe(true);
    // The optimizer update is its own phase, on its own row of the trace viewer.
    const adam = ops.filter((e) => e.name === 'adam');
    expect(adam.length).toBeGreaterThan(0);
    expect(adam.every((e) => e.cat === 'update' && e.tid === 3)).toBe(true);
    expect(r.stdout).toMatch(/op calls, [\d.]+ GFLOP/);
    expect(r.stdout).not.toContain('furthest from float64');
  });

  it('trace --shadow compares each op with float64 from its own inputs, and lists the results furthest from it', async () => {
    const out = path.join(tmp, 'trace-shadow');
    const r = await cli(['trace', '--shadow', '--backend', 'cpu', '--out', out, '--size', '64', '--channels', '2', '--batch', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('vs float64 (error, rounding)');
    const worst = r.stdout.split('furthest from float64')[1].split('\n');
    expect(worst[1]).toMatch(/^#\s+op\s+phase\s+result\s+rounding\s+error\s+kernel$/);
    expect(worst.slice(3, 13).every((l) => /^\d+\s+\w+\s+(forward|backward|update)\s+(output|input) \d/.test(l))).toBe(true);
    const t = JSON.parse(fs.readFileSync(path.join(out, 'trace.json'), 'utf8')) as { traceEvents: Array<{ ph: string; args?: { shadow?: Array<{ rounding: unknown }> } }> };
    const shadows = t.traceEvents.filter((e) => e.ph === 'X' && e.args?.shadow).flatMap((e) => e.args!.shadow!.map((x) => x.rounding));
    expect(shadows.length).toBeGreaterThan(100);
    expect(shadows.every((r) => typeof r === 'number')).toBe(true); // an infinitely wrong result would be 'Infinity'
    expect(Math.max(...(shadows as number[]))).toBeLessThan(10); // the CPU's float32 kernels accumulate in float64
  });

  it('bad arguments get clear errors and a non-zero exit', async () => {
    const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    // A category folder given as --data; a category whose train/good is empty.
    for (const d of ['train/good', 'test/good']) fs.mkdirSync(path.join(tmp, 'd1', 'woven', d), { recursive: true });
    fs.mkdirSync(path.join(tmp, 'no images', 'woven', 'train', 'good'), { recursive: true });
    const cases: Array<[string[], RegExp]> = [
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['train', '--size', 'big'], /--size expects a whole number from 8 to 4096, got 'big'/],
      [['train', '--size', '0x40'], /--size expects a whole number from 8 to 4096, got '0x40'/],
      [['train', '--size', '100000'], /--size expects a whole number from 8 to 4096, got '100000'/],
      [['train', '--channels', '100000'], /--channels expects a whole number from 1 to 1024/],
      [['train', '--seed', '4294967296'], /--seed expects a whole number from 0 to 4294967295/],
      [['train', '--category', '../evil'], /--category '\.\.\/evil' is not a folder name/],
      [['train', '--out', ''], /--out expects a folder, got ''/],
      [['train', '--category', ''], /--category: no category given/],
      [['analyze', '--model', 'ae'], /analyze: --model applies to train and trace only/],
      [['evaluate', '--resume'], /evaluate: --resume applies to train and reproduce only/],
      [['train', '--shadow'], /train: --shadow applies to trace only/],
      [['train', '--schedule', 'cosine'], /--schedule must be one of constant, onecycle, onecycle-steps, plateau, got 'cosine'/],
      [['analyze', '--optimizer', 'adam'], /analyze: --optimizer applies to train, reproduce and trace only/],
      [['trace', '--batch', '1', '--out', path.join(tmp, 'small')], /--batch 1: at --size 64 the esann network's deepest layer is 1x1/],
      [['gradcheck', '--tolerance', '0'], /--tolerance expects a number > 0, got '0'/],
      [['gradcheck', '--seed', '1.5'], /--seed expects a whole number from 0 to 4294967295, got '1.5'/],
      // A negative number is a value like any other (parseArgs alone calls it an ambiguous argument).
      [['train', '--seed', '-1'], /--seed expects a whole number from 0 to 4294967295, got '-1'/],
      [['evaluate', '--test-limit', '-1'], /--test-limit expects a whole number from 0 to \d+, got '-1'/],
      [['train', '--lr', '-.5'], /--lr expects a number > 0, got '-.5'/],
      [['gradcheck', '--seed', '-1'], /--seed expects a whole number from 0 to 4294967295, got '-1'/],
      [['gradcheck', '--tolerance', '-1e-3'], /--tolerance expects a number > 0, got '-1e-3'/],
      [['train', '--preset', 'vgg'], /--preset must be one of esann, icpr, got 'vgg'/],
      [['train', '--backend', 'tpu'], /--backend must be one of auto, cpu, webgpu, got 'tpu'/],
      [['train', '--whatever'], /Unknown option '--whatever'/],
      [['analyze', '--out', path.join(tmp, 'empty'), '--category', 'woven', '--backend', 'cpu'], /best\.safetensors not found: train it first/],
      [['evaluate', '--out', path.join(tmp, 'empty'), '--category', 'woven', '--backend', 'cpu'], /aesc.best\.safetensors not found: train it first/],
      // The hint to train names the options that decide which model fits (quoted for a shell where need be).
      [['evaluate', '--out', path.join(tmp, 'empty'), '--category', 'woven', '--data', path.join(tmp, 'my data'), '--preset', 'icpr', '--size', '128', '--channels', '4'],
        new RegExp(`train it first \\(skipgrad train --category woven --model aesc --data '${esc(path.join(tmp, 'my data'))}' --preset icpr --size 128 --channels 4 --out ${esc(path.join(tmp, 'empty'))}\\)`)],
      [['analyze', '--out', path.join(tmp, 'empty'), '--category', 'woven'], new RegExp(`train it first \\(skipgrad train --category woven --model ae --out ${esc(path.join(tmp, 'empty'))}\\)`)],
      [['train', '--data', path.join(tmp, 'd1', 'woven'), '--category', 'woven', '--backend', 'cpu'],
        new RegExp(`--data ${esc(path.join(tmp, 'd1', 'woven'))} is a category folder \\(it holds train/ and test/\\), not the data set's root: pass its parent, --data ${esc(path.join(tmp, 'd1'))} --category woven`)],
      [['train', '--data', path.join(tmp, 'no images'), '--category', 'woven', '--backend', 'cpu'], new RegExp(`train: no training images: ${esc(path.join(tmp, 'no images', 'woven', 'train', 'good'))} holds no \\.png files`)],
      [['train', '--train-limit', '1', '--category', 'woven', '--out', path.join(tmp, 'one'), '--backend', 'cpu', '--no-progress'],
        new RegExp(`train: --train-limit 1 leaves one training image; at least 2 of ${esc(path.join(tmp, 'one', 'data', 'woven', 'train', 'good'))} are needed \\(20% of them, at least one, are held out for validation\\)`)],
      [['train', '--data', path.join(tmp, 'nowhere'), '--backend', 'cpu'], /--data .*nowhere: no such folder/],
      [['train', '--category', 'marble', '--out', path.join(tmp, 'm'), '--backend', 'cpu'], /no built-in synthetic category marble/],
      [['train', '--size', '32', '--out', path.join(tmp, 'small'), '--backend', 'cpu'], /--size 32 does not fit the esann network: .*the least size that fits is 61/],
      [['reproduce', '--preset', 'icpr', '--size', '96', '--out', path.join(tmp, 'small')], /--size 96 does not fit the icpr network: .*divisible by 2\^6/],
    ];
    for (const [args, msg] of cases) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(msg);
    }
    // A missing model is found before any data is generated.
    expect(fs.existsSync(path.join(tmp, 'empty', 'data'))).toBe(false);
    // So is a size the network cannot take: nothing is written.
    expect(fs.existsSync(path.join(tmp, 'small'))).toBe(false);
    const help = await cli(['help']);
    expect(help.stdout).toContain('reproduce');
    expect(help.stdout).toContain('--backend auto|cpu|webgpu');
    for (const args of [['train', '--help'], ['gradcheck', '-h']]) {
      const h = await cli(args);
      expect(h.code, args.join(' ')).toBe(0);
      expect(h.stdout).toContain('Usage: skipgrad <command> [options]');
    }
  });

  it('each command refuses every option it does not use, and takes every one it uses', async () => {
    const value: Record<string, string[]> = {
      backend: ['cpu'], data: [path.join(tmp, 'nowhere')], category: ['woven'], model: ['ae'], preset: ['esann'], size: ['64'],
      channels: ['2'], epochs: ['1'], batch: ['2'], lr: ['0.01'], out: [path.join(tmp, 'unused')], 'train-limit': ['3'],
      'test-limit': ['2'], 'analysis-images': ['8'], 'no-progress': [], resume: [], schedule: ['constant'], optimizer: ['adam'], shadow: [],
    };
    // Read from the code (pipeline.ts): the options each command does not use. --seed is everyone's.
    const unused: Record<string, string[]> = {
      reproduce: ['model', 'shadow'],
      'generate-data': ['backend', 'model', 'preset', 'channels', 'epochs', 'batch', 'lr', 'analysis-images', 'no-progress', 'resume', 'schedule', 'optimizer', 'shadow'],
      train: ['test-limit', 'analysis-images', 'shadow'],
      analyze: ['model', 'epochs', 'lr', 'no-progress', 'resume', 'schedule', 'optimizer', 'shadow'],
      visualize: ['model', 'epochs', 'batch', 'lr', 'analysis-images', 'no-progress', 'resume', 'schedule', 'optimizer', 'shadow'],
      evaluate: ['model', 'epochs', 'lr', 'analysis-images', 'no-progress', 'resume', 'schedule', 'optimizer', 'shadow'],
      trace: ['data', 'category', 'epochs', 'train-limit', 'test-limit', 'analysis-images', 'no-progress', 'resume', 'schedule'],
    };
    const args = (options: string[]): string[] => options.flatMap((o) => [`--${o}`, ...value[o]]);
    for (const [command, refused] of Object.entries(unused)) {
      const r = await cli([command, ...args(refused)]);
      expect(r.code, command).toBe(2);
      const named = [...r.stderr.matchAll(/--([\w-]+) applies to [\w, -]+ only/g)].map((m) => m[1]);
      expect(named, `${command}: ${r.stderr}`).toEqual(refused);
      expect(r.stderr).toMatch(new RegExp(`^skipgrad: ${command}: --`));
      // The options it uses pass, up to a bad --seed (checked after them), for generate-data with --data or --out.
      const used = Object.keys(value).filter((o) => !refused.includes(o) && !(command === 'generate-data' && o === 'out'));
      const ok = await cli([command, ...args(used), '--seed', '4294967296']);
      expect(ok.stderr, command).toMatch(/^skipgrad: --seed expects a whole number from 0 to 4294967295/);
    }
    const trace = await cli(['trace', '--data', '/nonexistent', '--category', 'foo', '--epochs', '99', '--train-limit', '3']);
    expect(trace.stderr).toMatch(/^skipgrad: trace: --data applies to reproduce, generate-data, train, analyze, visualize and evaluate only; --category applies to .* only; --epochs applies to train and reproduce only; --train-limit applies to/);
    const both = await cli(['generate-data', '--data', path.join(tmp, 'gen'), '--out', path.join(tmp, 'unused')]);
    expect(both.stderr).toMatch(/generate-data: --out is not used with --data/);
    expect(fs.existsSync(path.join(tmp, 'unused'))).toBe(false);
    expect(fs.existsSync(path.join(tmp, 'gen'))).toBe(false);
  });

  it('the skipgrad command exists before a build (npx links it then), says to build when dist/ is missing, and runs the built CLI', async () => {
    const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8')) as { bin: { skipgrad: string }; files: string[] };
    const bin = pkg.bin.skipgrad;
    expect(bin.startsWith('dist/'), 'a build output: a fresh clone has no such file').toBe(false);
    expect(fs.existsSync(bin)).toBe(true);
    expect(pkg.files).toContain(bin);
    // A copy of the command without dist/ beside it, then with a stand-in for the built CLI.
    const root = path.join(tmp, 'bin-copy');
    fs.mkdirSync(path.join(root, 'bin'), { recursive: true });
    fs.copyFileSync(bin, path.join(root, 'bin', path.basename(bin)));
    const command = path.join(root, 'bin', path.basename(bin));
    const unbuilt = await run(process.execPath, [command, 'help']).catch((e: { code: number; stderr: string }) => e);
    expect('code' in unbuilt ? unbuilt.code : 0).toBe(2);
    expect(unbuilt.stderr).toContain(`skipgrad: the command line is not built (${path.join(root, 'dist', 'src', 'cli.js')} is missing): run 'npm run build' in ${root}${path.sep} first`);
    fs.mkdirSync(path.join(root, 'dist', 'src'), { recursive: true });
    fs.writeFileSync(path.join(root, 'dist', 'src', 'cli.js'), 'process.stdout.write(JSON.stringify(process.argv.slice(2)));\n');
    const built = await run(process.execPath, [command, 'train', '--seed', '1']);
    expect(JSON.parse(built.stdout)).toEqual(['train', '--seed', '1']);
  });

  it('environment variables: SKIPGRAD_BACKEND is the default of --backend; bad values are named, not ignored', async () => {
    const out = path.join(tmp, 'env');
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ SKIPGRAD_BACKEND: 'bogus' }, /--backend \(from SKIPGRAD_BACKEND\) must be one of auto, cpu, webgpu, got 'bogus'/],
      [{ SKIPGRAD_THREADS: 'abc' }, /^skipgrad: SKIPGRAD_THREADS='abc' is not a whole number from 1 to \d+/],
      [{ SKIPGRAD_THREADS: '100000' }, /SKIPGRAD_THREADS='100000' is not a whole number from 1 to \d+ \(4 per core/],
      [{ SKIPGRAD_NAN_GUARD: 'yes' }, /SKIPGRAD_NAN_GUARD='yes' is not 1, true, 0 or false/],
    ];
    for (const [env, msg] of cases) {
      const r = await cli(['trace', '--out', out, '--channels', '2', '--batch', '2'], env);
      expect(r.code, JSON.stringify(env)).toBe(2); // a usage error, found before the command starts
      expect(r.stderr, JSON.stringify(env)).toMatch(msg);
      expect(r.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
    }
    // gradcheck stops once, naming the variable, rather than reporting every op as failed.
    for (const [name, value] of [['SKIPGRAD_NAN_GUARD', 'yes'], ['SKIPGRAD_THREADS', 'abc']]) {
      const r = await cli(['gradcheck'], { [name]: value });
      expect(r.code, name).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^skipgrad: ${name}='${value}' is not `));
      expect(r.stdout).toBe('');
    }
    // A command that runs no model does not read SKIPGRAD_BACKEND.
    const data = await cli(['generate-data', '--data', path.join(out, 'gen'), '--category', 'woven', '--train-limit', '2', '--test-limit', '1'], { SKIPGRAD_BACKEND: 'bogus' });
    expect(data.code, data.stderr).toBe(0);
  });

  it('Ctrl-C during train ends it by SIGINT (status 130 in a shell); train said up front where the checkpoints go and how to continue', async () => {
    const out = path.join(tmp, 'interrupt');
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'train', '--backend', 'cpu', '--out', out, '--size', '64', '--channels', '2',
      '--train-limit', '6', '--category', 'woven', '--epochs', '1000', '--no-progress'], { env: { ...process.env, SKIPGRAD_BACKEND: 'cpu' } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const last = path.join(out, 'woven', 'aesc', 'last.safetensors');
    const poll = setInterval(() => {
      if (fs.existsSync(last)) {
        clearInterval(poll);
        child.kill('SIGINT');
      }
    }, 20);
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000); // a run that ignores Ctrl-C would go on for minutes
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.on('exit', (c, sig) => resolve([c, sig])));
    clearInterval(poll);
    clearTimeout(guard);
    expect([code, signal], stderr).toEqual([null, 'SIGINT']);
    expect(stderr).toContain(`woven/aesc: training; checkpoints after each epoch in ${path.join(out, 'woven', 'aesc')} (resuming continues an interrupted run: --resume)`);
    const history = JSON.parse(fs.readFileSync(path.join(out, 'woven', 'aesc', 'history.json'), 'utf8')) as { history: unknown[] };
    expect(history.history.length).toBeLessThan(1000);
  });

  it('train that starts over and is killed: the previous run stays set aside, the killed run resumes with --resume', async () => {
    const out = path.join(tmp, 'killed');
    const dir = path.join(out, 'woven', 'aesc');
    const common = ['--backend', 'cpu', '--out', out, '--size', '64', '--channels', '2', '--train-limit', '6', '--category', 'woven', '--no-progress'];
    expect((await cli(['train', ...common, '--epochs', '1'])).code).toBe(0);
    const finished = fs.readFileSync(path.join(dir, 'best.safetensors'));
    // Starting over: killed (no chance to clean up) once its first epoch is written.
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'train', ...common, '--epochs', '20'], { env: { ...process.env, SKIPGRAD_BACKEND: 'cpu' }, stdio: 'ignore' });
    let running = true;
    const exited = new Promise((resolve) => child.on('exit', resolve)).finally(() => (running = false));
    // curves.svg is the last of the finished run's files set aside; then history.json is the new run's epoch 1.
    const epochWritten = (): boolean => fs.existsSync(path.join(dir, 'previous-run', 'curves.svg')) && fs.existsSync(path.join(dir, 'history.json'));
    while (running && !epochWritten()) await new Promise((resolve) => setTimeout(resolve, 20));
    child.kill('SIGKILL');
    await exited;
    expect(fs.readFileSync(path.join(dir, 'previous-run', 'best.safetensors')).equals(finished)).toBe(true);
    // A step that loads the model says whose weights it uses, and where the finished run is.
    const evaluated = await cli(['evaluate', ...common.filter((a) => a !== '--no-progress'), '--test-limit', '2']);
    expect(evaluated.stderr).toContain(`note: ${path.join(dir, 'best.safetensors')} is the unfinished run's; ${path.join(dir, 'previous-run')} holds the last finished run`);
    const resumed = await cli(['train', ...common, '--epochs', '20', '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/woven\/aesc: resuming from .*last\.safetensors/);
    expect(resumed.stderr).toContain(`woven/aesc: ${path.join(dir, 'previous-run')} holds the last finished run, which the run resumed here started over to replace: it is removed when this run finishes`);
    const history = JSON.parse(fs.readFileSync(path.join(dir, 'history.json'), 'utf8')) as { history: Array<{ epoch: number }> };
    expect(history.history.map((h) => h.epoch)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(fs.existsSync(path.join(dir, 'previous-run'))).toBe(false); // the resumed run finished the replacement
  });

  it('train --resume continues from last.safetensors; checkpoints in the wrong slot or of another size are refused', async () => {
    const out = path.join(tmp, 'resume');
    const common = ['--backend', 'cpu', '--out', out, '--size', '64', '--channels', '2', '--train-limit', '6', '--category', 'woven'];
    const training = [...common, '--no-progress'];
    // A constant lr does not depend on the total of epochs: the run may be continued with more.
    const first = await cli(['train', ...training, '--epochs', '1', '--schedule', 'constant']);
    expect(first.code, first.stderr).toBe(0);
    const again = await cli(['train', ...training, '--epochs', '2', '--schedule', 'constant', '--resume']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/woven\/aesc: resuming from .*last\.safetensors/);
    const historyFile = path.join(out, 'woven', 'aesc', 'history.json');
    const history = JSON.parse(fs.readFileSync(historyFile, 'utf8')) as { history: Array<{ epoch: number }> };
    expect(history.history.map((h) => h.epoch)).toEqual([1, 2]);
    // Resuming a run that has its epochs says so, and trains (and writes) nothing.
    const historyBefore = fs.readFileSync(historyFile, 'utf8');
    const done = await cli(['train', ...training, '--epochs', '2', '--schedule', 'constant', '--resume']);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toMatch(/woven\/aesc: already trained 2 of 2 epochs \(best validation PSNR [\d.]+ dB at epoch \d\); nothing to do\n/);
    expect(done.stderr).not.toContain('training; checkpoints'); // nothing is trained
    expect(done.stderr).not.toMatch(/ s\)\n/); // no "best validation PSNR ... (0.1 s)" as if it had trained
    expect(fs.readFileSync(historyFile, 'utf8')).toBe(historyBefore);
    // Other settings (here the lr and the schedule) would join two different runs: refused, each named.
    const other = await cli(['train', ...training, '--epochs', '4', '--lr', '0.01', '--resume']);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/last\.safetensors: cannot resume: this run's training settings are not the checkpoint's: --lr 0\.01 \(the checkpoint's: 0\.005\), --schedule onecycle \(the checkpoint's: constant\); resume with the checkpoint's settings, or start over/);
    const over = await cli(['train', ...training, '--epochs', '1']);
    expect(over.stderr).toMatch(/woven\/aesc: starting over \(--resume would continue the run there instead\); the previous run's files are set aside in \S+previous-run until this run finishes, and put back if it fails/);
    expect(fs.existsSync(path.join(out, 'woven', 'aesc', 'previous-run'))).toBe(false); // it finished: it replaced them
    // AESc weights where AE's belong, and a size the model was not trained at.
    fs.mkdirSync(path.join(out, 'woven', 'ae'), { recursive: true });
    fs.copyFileSync(path.join(out, 'woven', 'aesc', 'best.safetensors'), path.join(out, 'woven', 'ae', 'best.safetensors'));
    const wrong = await cli(['evaluate', ...common]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/ae.best\.safetensors: this checkpoint is AESc \(with skips\), but it sits where the AE model belongs/);
    fs.rmSync(path.join(out, 'woven', 'ae'), { recursive: true });
    const size = await cli(['train', '--model', 'ae', ...training, '--epochs', '1']);
    expect(size.code, size.stderr).toBe(0);
    const at128 = await cli(['analyze', ...common.map((a) => (a === '64' ? '128' : a))]);
    expect(at128.code).not.toBe(0);
    expect(at128.stderr).not.toMatch(/generating synthetic data/); // refused before any data is made
    expect(at128.stderr).toMatch(/best\.safetensors: the model was trained at --size 64, this run asks for --size 128; pass --size 64/);
    const icpr = await cli(['analyze', ...common, '--preset', 'icpr']);
    expect(icpr.stderr).toMatch(/best\.safetensors: the model is the esann network, this run asks for --preset icpr; pass --preset esann/);
    const channels = await cli(['evaluate', ...common.map((a) => (a === '2' ? '3' : a))]);
    expect(channels.stderr).toMatch(/best\.safetensors: the model has 2 base channels, this run asks for --channels 3/);
  });
});
