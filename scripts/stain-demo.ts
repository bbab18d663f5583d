/**
 * Visual check of the stain corruption (src/experiments/stain.ts): renders a grid of stained synthetic
 * 256x256 textures (top row of each pair) above their masks, to a PNG outside the repository.
 *
 *   npx tsx scripts/stain-demo.ts [out.png] [seed]      (default /tmp/stain-demo.png, seed 1)
 */
import { writeFileSync } from 'node:fs';
import { PNG } from 'pngjs';
import { Rng } from '../src/engine/random.js';
import { addStain } from '../src/experiments/stain.js';

const out = process.argv[2] ?? '/tmp/stain-demo.png';
const seed = Number(process.argv[3] ?? 1);
const H = 256;
const W = 256;
const COLS = 6;
const PAIRS = 2;
const GAP = 4;

/** A grey texture in [0, 1]: stripes, a gradient and a little noise. */
function texture(rng: Rng): Float32Array {
  const img = new Float32Array(H * W);
  const f = rng.uniform(0.05, 0.3);
  const th = rng.uniform(0, Math.PI);
  for (let r = 0; r < H; r++) {
    for (let c = 0; c < W; c++) {
      const s = Math.sin(f * (c * Math.cos(th) + r * Math.sin(th)));
      img[r * W + c] = Math.min(1, Math.max(0, 0.5 + 0.2 * s + 0.15 * (c / W - 0.5) + rng.normal(0, 0.03)));
    }
  }
  return img;
}

const rng = new Rng(seed);
const png = new PNG({ width: COLS * (W + GAP) - GAP, height: 2 * PAIRS * (H + GAP) - GAP });
png.data.fill(255);
const put = (x0: number, y0: number, img: ArrayLike<number>, scale: number): void => {
  for (let r = 0; r < H; r++) {
    for (let c = 0; c < W; c++) {
      const v = Math.round(255 * Math.min(1, Math.max(0, img[r * W + c] * scale)));
      const o = ((y0 + r) * png.width + x0 + c) * 4;
      png.data[o] = png.data[o + 1] = png.data[o + 2] = v;
      png.data[o + 3] = 255;
    }
  }
};
for (let p = 0; p < PAIRS; p++) {
  for (let i = 0; i < COLS; i++) {
    const stain = addStain(texture(rng), H, W, rng);
    const x0 = i * (W + GAP);
    put(x0, 2 * p * (H + GAP), stain.image, 1);
    put(x0, (2 * p + 1) * (H + GAP), stain.mask, 1);
    console.log(JSON.stringify(stain.params));
  }
}
writeFileSync(out, PNG.sync.write(png));
console.log(`wrote ${out}`);
