/**
 * Static checks of a chart's Go templates that need no rendering: the `.Values` paths they name,
 * the named templates they include, and whether each file parses (blocks closed, known syntax).
 */
import { readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { parseTemplate } from './gotemplate.js';
import { loadYamlFile, templateFiles } from './helm-render.js';

export interface ValuesReference {
  file: string;
  line: number;
  path: string;
}

/** Every `.Values.a.b` (also `$.Values...`, `.root.Values...`) written in the chart's templates. */
export function valuesReferences(chartDir: string): ValuesReference[] {
  const out: ValuesReference[] = [];
  for (const path of templateFiles(chartDir)) {
    const file = relative(chartDir, path).split(sep).join('/');
    readFileSync(path, 'utf8')
      .split('\n')
      .forEach((text, i) => {
        for (const m of text.matchAll(/\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)) out.push({ file, line: i + 1, path: m[1]!.slice(1) });
      });
  }
  return out;
}

/** Whether `path` (a.b.c) names a key present in `values`. */
export function hasPath(values: unknown, path: string): boolean {
  let current = values;
  for (const key of path.split('.')) {
    if (typeof current !== 'object' || current === null || Array.isArray(current) || !(key in current)) return false;
    current = (current as Record<string, unknown>)[key];
  }
  return true;
}

/** The leaves of values.yaml: scalars, lists and empty maps, as dotted paths. */
export function valueLeaves(values: unknown, prefix = ''): string[] {
  if (typeof values !== 'object' || values === null || Array.isArray(values) || (prefix && Object.keys(values).length === 0)) return [prefix];
  return Object.entries(values as Record<string, unknown>).flatMap(([k, v]) => valueLeaves(v, prefix ? `${prefix}.${k}` : k));
}

/** Leaves no template reads, directly or through an ancestor (e.g. `toYaml .Values.worker.resources`). */
export function unusedLeaves(chartDir: string): string[] {
  const values = loadYamlFile(join(chartDir, 'values.yaml'));
  const used = new Set(valuesReferences(chartDir).map((r) => r.path));
  return valueLeaves(values).filter((leaf) => {
    const parts = leaf.split('.');
    return !parts.some((_, i) => used.has(parts.slice(0, i + 1).join('.')));
  });
}

export interface TemplateProblem {
  file: string;
  message: string;
}

/** Parses every template; reports syntax errors and includes of templates nobody defines. */
export function templateProblems(chartDir: string): TemplateProblem[] {
  const problems: TemplateProblem[] = [];
  const defined = new Set<string>();
  const includes: { file: string; name: string; line: number }[] = [];
  for (const path of templateFiles(chartDir)) {
    const file = relative(chartDir, path).split(sep).join('/');
    const text = readFileSync(path, 'utf8');
    try {
      for (const name of parseTemplate(text, file).defines.keys()) defined.add(name);
    } catch (error) {
      problems.push({ file, message: error instanceof Error ? error.message : String(error) });
    }
    text.split('\n').forEach((line, i) => {
      for (const m of line.matchAll(/\b(?:include|template)\s+"([^"]+)"/g)) includes.push({ file, name: m[1]!, line: i + 1 });
    });
  }
  for (const { file, name, line } of includes) {
    if (!defined.has(name)) problems.push({ file, message: `${file}:${line}: includes "${name}", which no template defines` });
  }
  return problems;
}
