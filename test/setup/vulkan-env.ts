/**
 * vitest global setup: when scripts/provision-vulkan.sh has provisioned a software Vulkan driver in .vk/,
 * export its variables (VK_ICD_FILENAMES, VK_DRIVER_FILES, LD_LIBRARY_PATH) so the test workers, which are
 * forked after this runs, load it. Without it the WebGPU suites skip (or fail under CI=true).
 */
import fs from 'node:fs';
import path from 'node:path';

export default function setup(): void {
  const envFile = path.resolve('.vk', 'env.sh');
  if (!fs.existsSync(envFile)) return;
  for (const line of fs.readFileSync(envFile, 'utf8').split('\n')) {
    const m = /^export ([A-Z_]+)="(.*)"$/.exec(line.trim());
    if (!m) continue;
    const [, name, raw] = m;
    // Expand ${VAR:+:$VAR} (append the current value) the way the shell would.
    const value = raw.replace(/\$\{([A-Z_]+):\+:\$\1\}/g, (_, v: string) => (process.env[v] ? `:${process.env[v]}` : ''));
    if (!process.env[name] || name === 'LD_LIBRARY_PATH') process.env[name] = value;
  }
}
