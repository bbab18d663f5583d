/**
 * A run that starts over where a finished run's files are sets them aside (previous-run/) until it finishes: a
 * failure puts them back (its own files going to failed-run/), success removes them, an interrupted run stays
 * resumable and the finished run it was replacing stays set aside. Last, the CLI's train step (trainStep) with a
 * run that fails after its first epoch's checkpoint (the failure is injected: a diverging lr is not repeatable at
 * this size).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { useBackend } from '../src/engine/backends.js';
import { DEFAULTS, trainStep, type RunConfig } from '../src/experiments/pipeline.js';
import { replacingRun } from '../src/experiments/replace-run.js';

/** trainAutoencoder, failing after epoch `failAfterEpoch` once that epoch's checkpoint and history are written. */
const inject = vi.hoisted(() => ({ failAfterEpoch: null as number | null }));
vi.mock('../src/experiments/train.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/experiments/train.js')>();
  return {
    ...real,
    trainAutoencoder: (o: Parameters<typeof real.trainAutoencoder>[0]) => real.trainAutoencoder({
      ...o,
      onEpoch: (r) => {
        o.onEpoch?.(r);
        if (inject.failAfterEpoch !== null && r.history.length >= inject.failAfterEpoch) throw new Error(`train: the loss became NaN at epoch ${r.history.length + 1}, step 1`);
      },
    }),
  };
});

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'skipgrad-replace-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const FILES = ['best.safetensors', 'last.safetensors', 'history.json'];

/** Writes each of FILES in `dir` with `tag` as its content. */
function writeRun(dir: string, tag: string, files = FILES): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of files) fs.writeFileSync(path.join(dir, f), `${tag} ${f}`);
}

/** The contents of the files in `dir` (null where missing). */
function contents(dir: string): Record<string, string | null> {
  return Object.fromEntries(FILES.map((f) => [f, fs.existsSync(path.join(dir, f)) ? fs.readFileSync(path.join(dir, f), 'utf8') : null]));
}

const expected = (tag: string, files = FILES): Record<string, string | null> => Object.fromEntries(FILES.map((f) => [f, files.includes(f) ? `${tag} ${f}` : null]));

describe('replacingRun', () => {
  it('a run that starts over and fails puts the previous run back; its own files go to failed-run/, and the error says so', async () => {
    const dir = path.join(tmp, 'fails');
    writeRun(dir, 'old');
    const lines: string[] = [];
    const run = replacingRun(dir, FILES, true, async () => {
      expect(contents(dir)).toEqual(expected('old', [])); // set aside before the run writes anything
      expect(contents(path.join(dir, 'previous-run'))).toEqual(expected('old'));
      writeRun(dir, 'new', ['best.safetensors', 'last.safetensors']); // its epoch 1
      throw new Error('train: the loss became NaN at epoch 2, step 1');
    }, (l) => lines.push(l));
    await expect(run).rejects.toThrow(`train: the loss became NaN at epoch 2, step 1; the previous run's files are back in ${dir}; this run's are in ${path.join(dir, 'failed-run')}`);
    expect(lines).toEqual([`the previous run's files are set aside in ${path.join(dir, 'previous-run')} until this run finishes, and put back if it fails`]);
    expect(contents(dir)).toEqual(expected('old'));
    expect(contents(path.join(dir, 'failed-run'))).toEqual(expected('new', ['best.safetensors', 'last.safetensors']));
    expect(fs.existsSync(path.join(dir, 'previous-run'))).toBe(false);
    // A run that fails before writing anything: the previous run is back, no failed-run/ is made for it.
    fs.rmSync(path.join(dir, 'failed-run'), { recursive: true });
    await expect(replacingRun(dir, FILES, true, () => Promise.reject(new Error('boom')), () => {})).rejects.toThrow(/^boom; the previous run's files are back in \S+$/);
    expect(contents(dir)).toEqual(expected('old'));
    expect(fs.readdirSync(dir).sort()).toEqual([...FILES].sort());
  });

  it('a run that starts over and finishes replaces the previous run: previous-run/ is removed', async () => {
    const dir = path.join(tmp, 'succeeds');
    writeRun(dir, 'old');
    expect(await replacingRun(dir, FILES, true, async () => {
      writeRun(dir, 'new');
      return 7;
    }, () => {})).toBe(7);
    expect(contents(dir)).toEqual(expected('new'));
    expect(fs.readdirSync(dir).sort()).toEqual([...FILES].sort());
  });

  it('an interrupted run is resumable; when it finishes the run it replaced goes; starting over again keeps that run to put back', async () => {
    // A run that started over was killed after an epoch: previous-run/ holds the finished run, <dir> the killed one's files.
    const dir = path.join(tmp, 'interrupted');
    writeRun(path.join(dir, 'previous-run'), 'finished');
    writeRun(dir, 'killed');
    // Starting over again: the killed run's files go to failed-run/, the finished run stays the one to put back.
    const lines: string[] = [];
    await expect(replacingRun(dir, FILES, true, async () => {
      writeRun(dir, 'again', ['last.safetensors']);
      throw new Error('boom');
    }, (l) => lines.push(l))).rejects.toThrow(`boom; the previous run's files are back in ${dir}; this run's are in ${path.join(dir, 'failed-run')}`);
    expect(lines[0]).toMatch(/previous-run holds the last finished run, which an unfinished run was replacing \(its files are now in \S+failed-run\)/);
    expect(contents(dir)).toEqual(expected('finished'));
    expect(contents(path.join(dir, 'failed-run'))).toEqual(expected('again', ['last.safetensors'])); // the latest failure's

    // Killed again; then --resume (not starting over) continues the files in <dir>, and previous-run/ is left alone ...
    const again = path.join(tmp, 'interrupted-resumed');
    writeRun(path.join(again, 'previous-run'), 'finished');
    writeRun(again, 'killed');
    await expect(replacingRun(again, FILES, false, () => Promise.reject(new Error('resume failed')), () => {})).rejects.toThrow(/^resume failed$/);
    expect(contents(again)).toEqual(expected('killed'));
    expect(contents(path.join(again, 'previous-run'))).toEqual(expected('finished'));
    // ... until the resumed run finishes: then it has replaced the finished one.
    await replacingRun(again, FILES, false, async () => writeRun(again, 'resumed'), () => {});
    expect(contents(again)).toEqual(expected('resumed'));
    expect(fs.existsSync(path.join(again, 'previous-run'))).toBe(false);
  });

  it('with no earlier run nothing is set aside: a failure is passed on as it was, the files stay', async () => {
    const dir = path.join(tmp, 'fresh');
    fs.mkdirSync(dir);
    const lines: string[] = [];
    const error = new Error('boom');
    await expect(replacingRun(dir, FILES, true, async () => {
      writeRun(dir, 'new');
      throw error;
    }, (l) => lines.push(l))).rejects.toBe(error);
    expect(lines).toEqual([]);
    expect(contents(dir)).toEqual(expected('new'));
  });
});

describe('trainStep (the CLI\'s train)', () => {
  it('a run that starts over and fails after writing an epoch loses nothing: the previous run is back, the failed one in failed-run/', async () => {
    const backend = await useBackend('cpu');
    const cfg: RunConfig = { ...DEFAULTS, backend: 'cpu', out: path.join(tmp, 'cli'), categories: ['woven'], size: 64, channels: 2, epochs: 2, trainLimit: 6, testLimit: 2, progress: false };
    const dir = path.join(cfg.out, 'woven', 'aesc');
    await trainStep(cfg, 'woven', 'aesc', backend);
    const runFiles = ['best.safetensors', 'last.safetensors', 'history.json', 'curves.svg'];
    const before = runFiles.map((f) => fs.readFileSync(path.join(dir, f)));
    inject.failAfterEpoch = 1;
    try {
      await expect(trainStep({ ...cfg, epochs: 3 }, 'woven', 'aesc', backend))
        .rejects.toThrow(`train: the loss became NaN at epoch 2, step 1; the previous run's files are back in ${dir}; this run's are in ${path.join(dir, 'failed-run')}`);
    } finally {
      inject.failAfterEpoch = null;
    }
    runFiles.forEach((f, i) => expect(fs.readFileSync(path.join(dir, f)).equals(before[i]), f).toBe(true));
    const failed = JSON.parse(fs.readFileSync(path.join(dir, 'failed-run', 'history.json'), 'utf8')) as { history: Array<{ epoch: number }> };
    expect(failed.history.map((h) => h.epoch)).toEqual([1]);
    expect(fs.existsSync(path.join(dir, 'previous-run'))).toBe(false);
  });
});
