// The Go-template emulation the chart checks rely on: the semantics where a chart usually breaks.
import { describe, expect, it } from 'vitest';
import { Executor, formatFloat, parseTemplate } from '../../src/deploy/gotemplate.js';
import { helmFunctions, renderChart } from '../../src/deploy/helm-render.js';

function run(source: string, data: unknown, functions: Record<string, (...args: unknown[]) => unknown> = {}): string {
  const parsed = parseTemplate(source, 'test');
  const executor = new Executor({ functions, defines: parsed.defines });
  return executor.render(parsed.root, data);
}

describe('Go templates', () => {
  it('trims whitespace at {{- and -}}, and keeps it otherwise', () => {
    expect(run('a  \n  {{- "b" -}}  \n  c', {})).toBe('abc');
    expect(run('a {{ "b" }} c', {})).toBe('a b c');
  });

  it('if / else if / else, with Go truthiness (0, "", empty list and map are false)', () => {
    const t = '{{ if .a }}A{{ else if .b }}B{{ else }}C{{ end }}';
    expect(run(t, { a: 1, b: 1 })).toBe('A');
    expect(run(t, { a: 0, b: 'x' })).toBe('B');
    expect(run(t, { a: '', b: [] })).toBe('C');
    expect(run(t, { a: {}, b: null })).toBe('C');
  });

  it('range over lists and maps (keys sorted), with variables; with rebinds the dot', () => {
    expect(run('{{ range $i, $v := .l }}{{ $i }}={{ $v }};{{ end }}', { l: ['x', 'y'] })).toBe('0=x;1=y;');
    expect(run('{{ range $k, $v := .m }}{{ $k }}={{ $v }};{{ end }}', { m: { b: 2, a: 1 } })).toBe('a=1;b=2;');
    expect(run('{{ with .m }}{{ .a }}{{ else }}none{{ end }}', { m: { a: 'in' } })).toBe('in');
    expect(run('{{ range .l }}{{ $.top }}{{ . }}{{ end }}', { top: '>', l: ['1', '2'] })).toBe('>1>2');
  });

  it('a missing map key is nil (printed empty by Helm), but a field of nil is an error', () => {
    expect(run('[{{ .a.missing }}]', { a: {} })).toBe('[<no value>]');
    expect(() => run('{{ .a.b.c }}', { a: {} })).toThrow(/nil pointer evaluating interface \{\}\.c/);
  });

  it('define/template and pipelines pass the value last; and/or short-circuit', () => {
    const functions = { upper: (s: unknown) => String(s).toUpperCase(), boom: () => { throw new Error('evaluated'); } };
    expect(run('{{ define "x" }}<{{ . }}>{{ end }}{{ template "x" "v" }}', {}, functions)).toBe('<v>');
    expect(run('{{ "a" | upper }}', {}, functions)).toBe('A');
    expect(run('{{ or "first" (boom) }}', {}, functions)).toBe('first');
    expect(run('{{ and "" (boom) }}', {}, functions)).toBe('');
  });

  it('variables declared in a block stay in it; = assigns the outer one', () => {
    expect(run('{{ $x := "a" }}{{ if true }}{{ $x = "b" }}{{ end }}{{ $x }}', {})).toBe('b');
    expect(() => run('{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}', {})).toThrow(/undefined variable/);
  });

  it('an unclosed block or a define inside a block is a parse error', () => {
    expect(() => parseTemplate('{{ if .a }}x', 't')).toThrow(/missing \{\{end\}\}|has no \{\{end\}\}/);
    expect(() => parseTemplate('{{ if .a }}{{ define "x" }}{{ end }}{{ end }}', 't')).toThrow(/not at the top level/);
  });

  it('floats print as Go prints float64 (YAML numbers in Helm are float64): 1e6 is 1e+06', () => {
    expect(formatFloat(8000)).toBe('8000');
    expect(formatFloat(262144)).toBe('262144');
    expect(formatFloat(1000000)).toBe('1e+06');
    expect(formatFloat(0.5)).toBe('0.5');
  });
});

describe('Helm functions', () => {
  function helm(source: string, data: unknown): string {
    const parsed = parseTemplate(source, 't');
    const executor: Executor = new Executor({ functions: helmFunctions(() => executor, { randomSeed: 'test' }), defines: parsed.defines });
    return executor.render(parsed.root, data);
  }

  it('comparing an int with a float64 (a YAML number) fails as in Helm; int converts', () => {
    expect(() => helm('{{ eq .n 1 }}', { n: 1 })).toThrow(/incompatible types for comparison/);
    expect(helm('{{ eq (int .n) 1 }}', { n: 1 })).toBe('true');
    expect(helm('{{ .n | int | quote }}', { n: 1000000 })).toBe('"1000000"');
    expect(helm('{{ .n | quote }}', { n: 1000000 })).toBe('"1e+06"');
  });

  it('toYaml sorts keys and drops the trailing newline; nindent and default behave as Sprig', () => {
    expect(helm('x:{{ toYaml .m | nindent 2 }}', { m: { b: 1, a: [1, 2] } })).toBe('x:\n  a:\n    - 1\n    - 2\n  b: 1');
    expect(helm('{{ "" | default "d" }}/{{ "v" | default "d" }}', {})).toBe('d/v');
    expect(helm('{{ printf "%s-%d" "a" (add 1 2) }}', {})).toBe('a-3');
  });

  it('unknown functions are errors, and the real chart renders with the functions implemented here', () => {
    expect(() => run('{{ nosuch 1 }}', {})).toThrow(/function "nosuch" not defined/);
    const chart = new URL('../../../charts/socketbridge', import.meta.url).pathname;
    expect(renderChart(chart).objects.length).toBeGreaterThan(10);
  });
});
