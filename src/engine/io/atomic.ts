/** Atomic file writes: data goes to a temp file next to the target, then is renamed over it, so a crash or a
 *  full disk never leaves a half-written file in place of a good one. */
import fs from 'node:fs';
import path from 'node:path';

let counter = 0;

/**
 * mkdir -p: makes `dir` and any missing parents, one level at a time, and throws naming the directory that could
 * not be made. Not fs.mkdirSync's { recursive: true }: in Node 20 that loops forever where mkdir fails with ENOENT
 * under a parent that exists (e.g. anywhere in /proc), so `--out /proc/x` hung instead of failing.
 */
export function makeDirs(dir: string): void {
  const full = path.resolve(dir);
  const missing: string[] = [];
  for (let d = full; !fs.existsSync(d); d = path.dirname(d)) {
    missing.push(d);
    if (path.dirname(d) === d) break;
  }
  for (const d of missing.reverse()) {
    try {
      fs.mkdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && fs.statSync(d).isDirectory()) continue; // made meanwhile
      throw new Error(`${d}: cannot make this directory (${(e as Error).message})`);
    }
  }
  if (!fs.statSync(full).isDirectory()) throw new Error(`${full}: is not a directory`);
}

/** Makes `dir` and checks that a file can be written in it, so a run fails at its start, not after an epoch of work. */
export function checkWritable(dir: string): void {
  makeDirs(dir);
  const probe = path.join(path.resolve(dir), `.skipgrad-write-check.${process.pid}.tmp`);
  try {
    fs.writeFileSync(probe, '');
    fs.rmSync(probe, { force: true });
  } catch (e) {
    throw new Error(`${dir}: cannot be written (${(e as Error).message})`);
  }
}

/** Temp files of writes this large are worth looking for when a process was killed mid-write (checkpoints). */
const STALE_CHECK_BYTES = 1 << 20;

/**
 * Removes the temp files of earlier writes of `base` whose process is gone (killed mid-write, e.g. by Ctrl-C): a
 * checkpoint's temp file is as large as the checkpoint, and nothing else would ever remove it.
 */
function removeStaleTemps(dir: string, base: string): void {
  const prefix = `.${base}.`;
  for (const name of fs.readdirSync(dir)) {
    // Exactly .<base>.<pid>.<n>.tmp (not another file's temp whose name starts like this one's).
    const m = name.startsWith(prefix) ? /^(\d+)\.\d+\.tmp$/.exec(name.slice(prefix.length)) : null;
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid <= 0 || pid === process.pid || processAlive(pid)) continue;
    fs.rmSync(path.join(dir, name), { force: true });
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}

export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${counter++}.tmp`);
  try {
    makeDirs(dir);
    if (data.length >= STALE_CHECK_BYTES) removeStaleTemps(dir, path.basename(file));
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // Nothing to clean up where the folder itself is not there (e.g. a file in the way): report the first error.
    }
    throw new Error(`${file}: cannot be written (${(e as Error).message})`);
  }
}
