/** The WGSL files themselves: every kernel listed for loading, each with the header the conventions ask for. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHADER_NAMES } from '../src/engine/webgpu/shaders.js';
import { shaderBindings } from '../src/engine/webgpu/runtime.js';

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

  it('every kernel declares binding 0 as the uniform Params and then storage buffers 1..n, as the runtime binds them', () => {
    for (const name of files) {
      const src = fs.readFileSync(path.join(dir, `${name}.wgsl`), 'utf8');
      const kinds = shaderBindings(name, src);
      const declared = [...src.matchAll(/^\s*@group\(0\)\s*@binding\((\d+)\)\s*var<storage,\s*(read|read_write)>/gm)];
      expect(kinds.length - 1, name).toBe(declared.length);
      for (const m of declared) expect(kinds[Number(m[1])], `${name} binding ${m[1]}`).toBe(m[2] === 'read' ? 'read-only-storage' : 'storage');
    }
  });

  it('shaderBindings rejects bindings the runtime cannot bind, naming the shader', () => {
    const params = '@group(0) @binding(0) var<uniform> P: Params;\n';
    expect(shaderBindings('k', `${params}@group(0) @binding(1) var<storage, read> x: array<f32>;\n@group(0) @binding(2) var<storage, read_write> y: array<f32>;`))
      .toEqual(['uniform', 'read-only-storage', 'storage']);
    // a commented-out binding is not a binding
    expect(shaderBindings('k', `${params}// @group(0) @binding(1) var<storage, read> x: array<f32>;`)).toEqual(['uniform']);
    expect(() => shaderBindings('k', `${params}@group(1) @binding(1) var<storage, read> x: array<f32>;`)).toThrow(/shader 'k'.*@group\(0\)/);
    expect(() => shaderBindings('k', `${params}@group(0) @binding(2) var<storage, read> x: array<f32>;`)).toThrow(/shader 'k': @binding\(1\) must be a storage buffer/);
    expect(() => shaderBindings('k', `${params}@group(0) @binding(0) var<storage, read> x: array<f32>;`)).toThrow(/shader 'k'.*distinct @binding/);
    expect(() => shaderBindings('k', '@group(0) @binding(0) var<storage, read> x: array<f32>;')).toThrow(/shader 'k': @binding\(0\) must be the uniform Params/);
    expect(() => shaderBindings('k', `${params}@group(0) @binding(1) var<uniform> Q: Params;`)).toThrow(/shader 'k': @binding\(1\) must be a storage buffer/);
    expect(() => shaderBindings('k', `${params}@group(0) @binding(1) var<storage> x: array<f32>;`)).toThrow(/shader 'k'.*var<storage, read\|read_write>/);
  });
});
