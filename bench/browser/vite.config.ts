/**
 * The browser bench's page script: `npm run bench:browser` -> dist/bench-browser/bench.js (bench/browser/main.ts with
 * the engine, the models and the tfjs side of the bench; tfjs itself comes from the page's script tags).
 */
import { defineConfig } from 'vite';
import { browserModule } from '../../vite.browser.config.js';

export default defineConfig(browserModule('bench/browser/main.ts', 'dist/bench-browser', 'bench.js'));
