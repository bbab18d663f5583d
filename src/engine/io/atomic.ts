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

export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${counter++}.tmp`);
  try {
    makeDirs(dir);
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
