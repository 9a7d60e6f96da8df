// Where the Go-template emulation once accepted what Helm rejects, or rejected what Helm accepts:
// each case as Go's text/template (and Sprig, and go-yaml v2 under Helm and Kubernetes) decides it.
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { Executor, parseTemplate } from '../../src/deploy/gotemplate.js';
import { goYamlOptions, helmFunctions } from '../../src/deploy/helm-render.js';

function run(source: string, data: unknown = {}): string {
  const parsed = parseTemplate(source, 'test');
  const executor: Executor = new Executor({ functions: helmFunctions(() => executor, { randomSeed: 'seed' }), defines: parsed.defines });
  return executor.render(parsed.root, data);
}

describe('Go template faithfulness', () => {
  it('nil (a missing value) passed to a string function fails the render, as Go refuses it before the call', () => {
    for (const source of ['{{ .missing | b64enc }}', '{{ b64enc .missing }}', '{{ .n | upper }}', '{{ .n | trimSuffix "-" }}', '{{ .n | sha256sum }}', '{{ printf .n }}']) {
      expect(() => run(source, { n: null }), source).toThrow(/invalid value; expected string/);
    }
    expect(() => run('{{ .port | b64enc }}', { port: 8000n })).toThrow(/wrong type for value; expected string; got int/);
    // Functions taking any value keep taking nil.
    expect(run('[{{ .missing | quote }}][{{ .missing | default "d" }}][{{ .missing | toJson }}]')).toBe('[][d][null]');
    expect(run('{{ .s | b64enc }}', { s: 'ok' })).toBe('b2s=');
  });

  it('comments: only right after {{ or {{- and right before }} or -}}, as Go lexes them', () => {
    expect(run('a{{/* c */}}b')).toBe('ab');
    expect(run('a \n{{- /* c */ -}}\n b')).toBe('ab');
    expect(run('{{/* a\nmultiline comment */}}x')).toBe('x');
    expect(() => run('{{ /* c */ }}')).toThrow(/unrecognized character in action/);
    expect(() => run('{{/* c */ }}')).toThrow(/comment ends before closing delimiter/);
    expect(() => run('{{- /* c */}}x')).not.toThrow();
  });

  it('variables: a pipeline\'s variable is in scope in {{else}}; an undefined one fails at parse, even in a branch never taken', () => {
    expect(run('{{ if $x := .a }}yes{{ else }}[{{ $x }}]{{ end }}', { a: 0n })).toBe('[0]');
    expect(run('{{ with $x := .a }}{{ . }}{{ else }}[{{ $x }}]{{ end }}', { a: '' })).toBe('[]');
    expect(() => parseTemplate('{{ if false }}{{ $nope }}{{ end }}', 'test')).toThrow(/undefined variable "\$nope"/);
    expect(() => parseTemplate('{{ if .a }}{{ $x := 1 }}{{ end }}{{ $x }}', 'test')).toThrow(/undefined variable "\$x"/);
    expect(() => parseTemplate('{{ range .l }}{{ $i := 1 }}{{ end }}{{ $i = 2 }}', 'test')).toThrow(/undefined variable "\$i"/);
    expect(() => parseTemplate('{{ define "d" }}{{ $top }}{{ end }}{{ $top := 1 }}', 'test')).toThrow(/undefined variable "\$top"/);
    // Declared in the if's body: Go's parser keeps it to {{end}}, so only running the else branch fails.
    expect(run('{{ if .a }}{{ $x := 1 }}{{ $x }}{{ else }}{{ $x }}{{ end }}', { a: true })).toBe('1');
    expect(() => run('{{ if .a }}{{ $x := 1 }}{{ else }}{{ $x }}{{ end }}', { a: false })).toThrow(/undefined variable/);
  });

  it('eq / ne with nil on one side is false / true, not an error (Go 1.18+); other mismatched kinds still error', () => {
    expect(run('{{ eq .missing "x" }} {{ eq "x" .missing }} {{ ne .missing "x" }}')).toBe('false false true');
    expect(run('{{ if eq .Values.mode "fast" }}fast{{ else }}slow{{ end }}', { Values: {} })).toBe('slow');
    expect(() => run('{{ eq 1 "1" }}')).toThrow(/incompatible types for comparison/);
    expect(() => run('{{ lt .missing 1 }}')).toThrow();
  });

  it('YAML is read as Kubernetes and Helm read it (YAML 1.1): unquoted on/off/yes/no/y/n are booleans, 0777 is octal', () => {
    const doc = YAML.parse('a: on\nb: off\nc: yes\nd: no\ne: y\nf: "on"\ng: 0777\nh: 2024-01-02\ni: 1:30', goYamlOptions) as Record<string, unknown>;
    expect(doc).toEqual({ a: true, b: false, c: true, d: false, e: true, f: 'on', g: 511, h: '2024-01-02', i: '1:30' });
    // fromYaml inside a template, too.
    expect(run('{{ (fromYaml "enabled: on").enabled | toJson }}')).toBe('true');
  });
});
