/** The WGSL files themselves: every kernel listed for loading, each with the header the conventions ask for. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHADER_NAMES } from '../src/engine/webgpu/shaders.js';

const dir = path.resolve('shaders');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.wgsl')).map((f) => f.slice(0, -5)).sort();

describe('shaders/', () => {
  it('every .wgsl file is loaded by the backend, and every loaded name exists', () => {
    expect([...SHADER_NAMES].sort()).toEqual(files);
  });

  for (const name of files) {
    it(`${name}.wgsl: header comment, Params uniform at binding 0, entry point main, no templating`, () => {
      const src = fs.readFileSync(path.join(dir, `${name}.wgsl`), 'utf8');
      expect(src.trimStart().startsWith('//') || src.trimStart().startsWith('/*'), 'starts with a header comment').toBe(true);
      const header = src.slice(0, src.search(/^\s*(struct|@group|override|const|fn|alias|enable)\b/m));
      expect(header.toLowerCase()).toMatch(/binding/);
      expect(header.toLowerCase()).toMatch(/grid|dispatch|workgroup/);
      expect(src).toMatch(/@group\(0\)\s*@binding\(0\)\s*var<uniform>\s*\w+\s*:\s*Params/);
      expect(src).toMatch(/@compute[\s\S]*fn main\(/);
      expect(src).not.toMatch(/\$\{|\{\{/);
    });
  }
});
