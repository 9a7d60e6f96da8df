// manifests/base and the chart (a release named "socketbridge", whose object names the base uses)
// select pods with the same labels: Deployments, Services and PodDisruptionBudgets alike, so moving
// from one to the other never needs the Deployments deleted (a Deployment's selector is immutable).
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderChart } from '../../src/deploy/helm-render.js';
import { chartDir, kustomize, repoRoot } from '../../src/deploy/repo.js';

interface Obj {
  kind: string;
  metadata: { name: string };
  spec?: { selector?: Record<string, unknown> & { matchLabels?: Record<string, string> }; template?: { metadata?: { labels?: Record<string, string> } } };
}

function selectors(objects: Obj[]): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  for (const o of objects) {
    if (o.kind === 'Deployment' || o.kind === 'PodDisruptionBudget') out.set(`${o.kind}/${o.metadata.name}`, o.spec?.selector?.matchLabels ?? {});
    if (o.kind === 'Service') out.set(`${o.kind}/${o.metadata.name}`, (o.spec?.selector ?? {}) as Record<string, string>);
  }
  return out;
}

describe('one label scheme', () => {
  const chart = renderChart(chartDir, { releaseName: 'socketbridge', namespace: 'socketbridge' }).objects as unknown as Obj[];
  const base = kustomize(join(repoRoot, 'manifests', 'base')) as unknown as Obj[];

  it('manifests/base selects every Deployment, Service and PDB with exactly the chart\'s selector labels', () => {
    const fromChart = selectors(chart);
    const fromBase = selectors(base);
    expect(fromBase.size).toBeGreaterThanOrEqual(10);
    for (const [key, selector] of fromBase) {
      expect(fromChart.has(key), `${key} exists in the chart`).toBe(true);
      expect(selector, key).toEqual(fromChart.get(key));
    }
  });

  it("the base's pods carry the labels its selectors and the chart's select on", () => {
    for (const o of base.filter((x) => x.kind === 'Deployment')) {
      const labels = o.spec?.template?.metadata?.labels ?? {};
      expect(labels, o.metadata.name).toMatchObject(o.spec?.selector?.matchLabels ?? {});
      expect(labels['app.kubernetes.io/instance'], o.metadata.name).toBe('socketbridge');
    }
  });
});
