// The chart's Grafana dashboards as data: every panel query and template variable, with Grafana's
// variables filled in so Prometheus can evaluate them directly.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '@socketbridge/devkit';

export const dashboardsDir = join(repoRoot, 'charts', 'socketbridge', 'dashboards');

interface Target {
  refId?: string;
  expr?: string;
  legendFormat?: string;
}

export interface Panel {
  id?: number;
  type?: string;
  title?: string;
  targets?: Target[];
  panels?: Panel[];
}

export interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating?: { list?: Array<{ name: string; type: string; query?: unknown; definition?: string }> };
}

export interface DashboardQuery {
  file: string;
  dashboard: string;
  /** The panel title, or `variable <name>` for a template variable's query. */
  panel: string;
  refId: string;
  legend: string;
  /** As written in the dashboard. */
  raw: string;
  /** With the variables filled in: what Prometheus evaluates. */
  expr: string;
}

export function loadDashboards(): Array<{ file: string; dashboard: Dashboard }> {
  return readdirSync(dashboardsDir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({ file, dashboard: JSON.parse(readFileSync(join(dashboardsDir, file), 'utf8')) as Dashboard }));
}

/**
 * Grafana's variables as a test fills them: `job` and `instance` (and any other query variable)
 * as the regex `.*` (what "All" sends with allValue `.*`), `$__rate_interval` as 30s.
 */
export const defaultVariables: Record<string, string> = {
  __rate_interval: '30s',
  __interval: '15s',
  __range: '5m',
  job: '.*',
  instance: '.*',
};

export function fillVariables(expr: string, variables: Record<string, string> = defaultVariables): string {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)/g, (whole, a?: string, b?: string, c?: string) => {
    const name = (a ?? b ?? c)!;
    return variables[name] ?? (name.startsWith('__') ? whole : '.*');
  });
}

/** `label_values(selector, label)` → `selector`: the series the variable's values come from. */
export function variableSeries(query: string): string | undefined {
  const match = /^\s*label_values\(\s*(.+)\s*,\s*\w+\s*\)\s*$/s.exec(query);
  return match ? match[1] : undefined;
}

/** Every query of every panel (rows' nested panels included) and every query variable. */
export function dashboardQueries(file: string, dashboard: Dashboard, variables = defaultVariables): DashboardQuery[] {
  const queries: DashboardQuery[] = [];
  const walk = (panels: Panel[]) => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) {
        if (!target.expr) continue;
        queries.push({
          file,
          dashboard: dashboard.title,
          panel: panel.title ?? `panel ${panel.id}`,
          refId: target.refId ?? '?',
          legend: target.legendFormat ?? '',
          raw: target.expr,
          expr: fillVariables(target.expr, variables),
        });
      }
      walk(panel.panels ?? []);
    }
  };
  walk(dashboard.panels);
  for (const variable of dashboard.templating?.list ?? []) {
    if (variable.type !== 'query') continue;
    const text = typeof variable.query === 'string' ? variable.query : (variable.query as { query?: string } | undefined)?.query ?? variable.definition ?? '';
    const series = variableSeries(text);
    if (!series) continue;
    queries.push({ file, dashboard: dashboard.title, panel: `variable ${variable.name}`, refId: variable.name, legend: '', raw: text, expr: fillVariables(series, variables) });
  }
  return queries;
}
