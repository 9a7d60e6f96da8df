import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CRD_FILES, crdNode, generateCrd } from '../src/generate-crd.js';

const [manifest, chart] = CRD_FILES.map((file) => readFileSync(file, 'utf8')) as [string, string];

describe('the CRD is generated from the bridge schema (services/common/src/bridge-schema.ts)', () => {
  it('the committed CRD is what npm run generate:crd writes', () => {
    expect(manifest, 'run npm run generate:crd after changing the bridge schema').toBe(generateCrd(manifest));
  });

  it("the Helm chart's copy is the same file", () => {
    expect(chart).toBe(manifest);
  });

  it('a CRD edited by hand, or left behind by a schema change, is rewritten', () => {
    const stale = manifest.replace('maxItems: 50', 'maxItems: 51').replace('must be unique within a SocketBridge', 'must be unique');
    expect(stale).not.toBe(manifest);
    expect(generateCrd(stale)).toBe(manifest);
  });

  it('only the spec schema is generated: the header, printer columns and status are kept as written', () => {
    const edited = manifest.replace('- name: Ready', '- name: Ready2').replace('maxLength: 32768', 'maxLength: 1');
    expect(generateCrd(edited)).toBe(edited);
  });

  it('refuses what a structural schema cannot hold, rather than writing a CRD the API server refuses', () => {
    expect(() => crdNode({ type: 'object', properties: { a: { anyOf: [{ type: 'string' }, { type: 'number' }] } } })).toThrow(/spec\.a: anyOf/);
    expect(() => crdNode({ type: 'object', properties: { a: { $ref: '#/x' } } })).toThrow(/spec\.a: \$ref/);
    expect(() => crdNode({ type: 'object', properties: { a: { description: 'no type' } } })).toThrow(/spec\.a: every node .* needs a type/);
  });
});
