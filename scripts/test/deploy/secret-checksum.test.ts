// The chart's pod templates carry checksum/secret: a `helm upgrade` that changes a key rolls every
// component onto it together (a changed pod template is a rollout), and one that changes nothing in
// the Secret leaves the pods alone.
import { describe, expect, it } from 'vitest';
import { renderChart, type Values } from '../../src/deploy/helm-render.js';
import { chartDir } from '../../src/deploy/repo.js';

interface Deployment {
  kind: string;
  metadata: { name: string };
  spec: { template: { metadata: { annotations?: Record<string, string> } } };
}

function checksums(...values: Values[]): Map<string, string | undefined> {
  const result = renderChart(chartDir, { releaseName: 'socketbridge', namespace: 'realtime', values });
  const out = new Map<string, string | undefined>();
  for (const o of result.objects as unknown as Deployment[]) {
    if (o.kind === 'Deployment') out.set(o.metadata.name, o.spec.template.metadata.annotations?.['checksum/secret']);
  }
  return out;
}

describe('checksum/secret on the pod templates', () => {
  const base = checksums();

  it('every Deployment (state, brokers, workers, publisher, operator) has one', () => {
    expect([...base.keys()].sort()).toEqual(['socketbridge-broker', 'socketbridge-operator', 'socketbridge-publisher', 'socketbridge-state', 'socketbridge-worker']);
    for (const [name, sum] of base) expect(sum, name).toMatch(/^[0-9a-f]{64}$/);
    // One Secret, one checksum: every component moves together.
    expect(new Set(base.values()).size).toBe(1);
  });

  it.each([
    ['auth.authKey', { auth: { authKey: 'k'.repeat(40) } }],
    ['auth.sccAuthKey', { auth: { sccAuthKey: 's'.repeat(40) } }],
    ['rabbitmq.url', { rabbitmq: { url: 'amqp://u:p@elsewhere:5672' } }],
    ['redis.url', { redis: { url: 'redis://elsewhere:6379' } }],
    ['auth.existingSecret', { auth: { existingSecret: 'mine' } }],
  ])('changes on every Deployment when %s changes', (_what, values) => {
    const changed = checksums(values as Values);
    for (const [name, sum] of changed) expect(sum, name).not.toBe(base.get(name));
  });

  it('stays when nothing in the Secret changes (replicas, log level, pod annotations)', () => {
    const other = checksums({ logLevel: 'debug', broker: { replicas: 3 }, worker: { podAnnotations: { a: 'b' } } });
    for (const [name, sum] of other) expect(sum, name).toBe(base.get(name));
  });

  it('keeps the podAnnotations given next to it', () => {
    const result = renderChart(chartDir, { releaseName: 'socketbridge', values: [{ publisher: { podAnnotations: { 'example.com/team': 'realtime' } } }] });
    const publisher = (result.objects as unknown as Deployment[]).find((o) => o.kind === 'Deployment' && o.metadata.name.endsWith('-publisher'))!;
    expect(publisher.spec.template.metadata.annotations).toEqual({ 'checksum/secret': expect.stringMatching(/^[0-9a-f]{64}$/), 'example.com/team': 'realtime' });
  });
});
