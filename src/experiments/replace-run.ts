/**
 * A training run that starts over where an earlier run's files are replaces them epoch by epoch; this keeps the
 * earlier files until the new run has finished, so a command that fails loses nothing already written:
 *
 *   <dir>/previous-run/  the last finished run's files, set aside (renamed) while a run that starts over replaces
 *                        them: removed when that run finishes, put back in <dir> when it fails.
 *   <dir>/failed-run/    the files of the last run that failed while replacing a finished one (and, when a later run
 *                        starts over, those an interrupted one left): kept, not deleted; each such run replaces the
 *                        one before it there.
 *
 * A run that is killed (no chance to put anything back) leaves previous-run/ and its own files in <dir>, where
 * --resume continues it; when that finishes, previous-run/ is removed. Starting over again keeps previous-run/ as
 * the run to put back and sets the unfinished run's files aside in failed-run/.
 * Each model's run is its own unit: in a command that trains several, those that finished stay.
 */
import fs from 'node:fs';
import path from 'node:path';
import { makeDirs } from '../engine/io/atomic.js';

export const PREVIOUS_RUN = 'previous-run';
export const FAILED_RUN = 'failed-run';

/** Renames those of `names` that are in `from` into `to` (made if needed); returns the names moved. */
function moveFiles(from: string, to: string, names: readonly string[]): string[] {
  const present = names.filter((n) => fs.existsSync(path.join(from, n)));
  if (present.length > 0) makeDirs(to);
  for (const n of present) fs.renameSync(path.join(from, n), path.join(to, n));
  return present;
}

/** Moves the run files in `dir` to failed-run/ (replacing what an earlier failed run left there); returns the names moved. */
function setAsideAsFailed(dir: string, files: readonly string[]): string[] {
  const failed = path.join(dir, FAILED_RUN);
  if (!files.some((n) => fs.existsSync(path.join(dir, n)))) return [];
  fs.rmSync(failed, { recursive: true, force: true });
  return moveFiles(dir, failed, files);
}

/**
 * Runs `run`, which writes the run `files` in `dir`. When `startOver`, an earlier run's files there are first set
 * aside in previous-run/, and put back if `run` throws (the failed run's own files go to failed-run/, and the error
 * says so). When `run` succeeds, previous-run/ is removed: the run was asked to replace it. `log` gets a line on
 * what was set aside, when anything was.
 */
export async function replacingRun<T>(dir: string, files: readonly string[], startOver: boolean, run: () => Promise<T>, log: (message: string) => void): Promise<T> {
  const previous = path.join(dir, PREVIOUS_RUN);
  const failed = path.join(dir, FAILED_RUN);
  if (startOver) {
    if (fs.existsSync(previous)) {
      // A run that started over was interrupted: previous-run/ still holds the last finished run.
      const moved = setAsideAsFailed(dir, files);
      log(`${previous} holds the last finished run, which an unfinished run was replacing${moved.length ? ` (its files are now in ${failed})` : ''}: it is put back if this run fails, removed when it finishes`);
    } else if (moveFiles(dir, previous, files).length > 0) {
      log(`the previous run's files are set aside in ${previous} until this run finishes, and put back if it fails`);
    }
  }
  let result: T;
  try {
    result = await run();
  } catch (e) {
    if (!startOver || !fs.existsSync(previous)) throw e;
    throw putBack(dir, files, e as Error);
  }
  fs.rmSync(previous, { recursive: true, force: true });
  return result;
}

/** Puts previous-run/ back in `dir` after `error`, the failed run's files going to failed-run/; returns the error to throw. */
function putBack(dir: string, files: readonly string[], error: Error): Error {
  const previous = path.join(dir, PREVIOUS_RUN);
  let moved: string[];
  try {
    moved = setAsideAsFailed(dir, files);
    moveFiles(previous, dir, files);
    fs.rmSync(previous, { recursive: true, force: true });
  } catch (e) {
    return new Error(`${error.message}; putting the previous run back failed (${(e as Error).message}): its files are in ${previous}`, { cause: error });
  }
  const failedFiles = moved.length ? `; this run's are in ${path.join(dir, FAILED_RUN)}` : '';
  return new Error(`${error.message}; the previous run's files are back in ${dir}${failedFiles}`, { cause: error });
}
