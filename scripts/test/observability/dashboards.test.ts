// Every query of every panel of every dashboard in charts/socketbridge/dashboards, evaluated by a
// real Prometheus (Debian's binary) that scrapes a running local cluster under traffic: each must
// return data.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AmqpProducer, LocalCluster, killAll, rabbitNames, waitFor } from '@socketbridge/devkit';
import { dashboardQueries, loadDashboards, type DashboardQuery } from '../../src/observability/dashboards.js';
import { PROMETHEUS_INSTALL_HINT, Prometheus, clusterTargets, prometheusBinary } from '../../src/observability/prometheus.js';
import { Traffic } from '../../src/observability/traffic.js';

const names = rabbitNames('observability');
let cluster: LocalCluster | undefined;
let prometheus: Prometheus | undefined;
let traffic: Traffic | undefined;

beforeAll(async () => {
  if (!prometheusBinary()) throw new Error(PROMETHEUS_INSTALL_HINT);
  cluster = await LocalCluster.start({ brokers: 2, workers: 2, publishers: 1, env: names });
  prometheus = await Prometheus.start(clusterTargets(cluster), { opsKey: cluster.env.SOCKETBRIDGE_OPS_KEY });
  traffic = await Traffic.start(cluster, names);
}, 120_000);

afterAll(async () => {
  await traffic?.stop();
  await prometheus?.stop();
  const producer = await AmqpProducer.connect().catch(() => undefined);
  await producer?.deleteTopology(names);
  await producer?.close();
  await cluster?.stop();
  await killAll();
});

/** The value of a one-series instant query, or NaN. */
async function scalar(expr: string): Promise<number> {
  const { result } = await prometheus!.query(expr);
  return result.length ? Number(result[0]!.value?.[1]) : Number.NaN;
}

describe('Grafana dashboards against a real Prometheus', () => {
  it('scrapes every process of the cluster: state, 2 brokers, 2 workers, a publisher', async () => {
    await waitFor(async () => (await prometheus!.targets()).filter((t) => t.health === 'up').length === 6, 30000, 'all 6 targets up', 200);
    const jobs = (await prometheus!.targets()).map((t) => t.job).sort();
    expect(jobs).toEqual(['broker', 'broker', 'publisher', 'state', 'worker', 'worker']);
  });

  it('every panel query of every dashboard returns data', { timeout: 180_000 }, async () => {
    const dashboards = loadDashboards();
    expect(dashboards.map((d) => d.file)).toEqual(expect.arrayContaining(['overview.json', 'state.json', 'broker.json', 'worker.json', 'publisher.json']));
    const queries: DashboardQuery[] = dashboards.flatMap(({ file, dashboard }) => dashboardQueries(file, dashboard));
    expect(queries.length).toBeGreaterThan(50);

    const t = traffic!;
    await t.refusals();
    await t.deadLetter();
    await t.round();
    await t.received(t.counts.published, 20000);
    t.trickle(250);

    // Wait for what the slowest panels need: the dead letter, the refusals and the latency histogram
    // scraped at least twice inside the 30 s rate window, and a cluster size from the state server.
    const needs: Array<[string, (value: number) => boolean]> = [
      // Two samples at least: rate() needs them, and this series starts with the dead letter.
      ['sum(count_over_time(socketbridge_messages_dead_lettered_total{reason="unparseable"}[30s]))', (v) => v >= 2],
      ['sum(increase(socketbridge_subscribe_rejections_total{reason="not_owner"}[30s]))', (v) => v > 0],
      ['sum(increase(socketbridge_handshake_rejections_total{reason="bad_token"}[30s]))', (v) => v > 0],
      ['sum(rate(socketbridge_publish_to_delivery_seconds_count[30s]))', (v) => v > 0],
      ['sum(rate(socketbridge_deliveries_total[30s]))', (v) => v > 0],
      ['max(socketbridge_cluster_brokers{job="state"})', (v) => v === 2],
    ];
    const last = new Map<string, number>();
    const started = Date.now();
    await waitFor(
      async () => {
        for (const [expr, ok] of needs) {
          const value = await scalar(expr);
          last.set(expr, value);
          if (!ok(value)) return false;
        }
        return true;
      },
      60000,
      'Prometheus to have scraped the traffic',
      500,
    ).catch((error: Error) => {
      throw new Error(`${error.message}; last values: ${JSON.stringify(Object.fromEntries(last))}`);
    });
    console.log(`Prometheus had the traffic ${Date.now() - started} ms after it started; evaluating ${queries.length} queries`);

    // Each query must return data; one that has none yet is asked again until 20 s have passed
    // (a series born late needs two scrapes inside the rate window), then it fails by name.
    let empty: string[] = [];
    const failed: string[] = [];
    let pending = queries;
    await waitFor(
      async () => {
        empty = [];
        const next: DashboardQuery[] = [];
        for (const query of pending) {
          try {
            const { result } = await prometheus!.query(query.expr);
            if (result.length === 0) {
              empty.push(`${query.file} / ${query.panel} [${query.refId}]: ${query.expr}`);
              next.push(query);
            }
          } catch (error) {
            failed.push(`${query.file} / ${query.panel} [${query.refId}]: ${(error as Error).message}`);
          }
        }
        pending = next;
        return pending.length === 0 || failed.length > 0;
      },
      20000,
      'every dashboard query to return data',
      1000,
    ).catch(() => undefined);
    expect(failed, 'queries Prometheus refused').toEqual([]);
    expect(empty, 'panels whose query returned no data').toEqual([]);

    // And the numbers are the cluster's: 2 brokers and 2 workers as the state server sees them
    // (publishers join as workers), 4 client sockets, both shards reporting, messages flowing.
    expect(await scalar('max(socketbridge_cluster_brokers{job="state"})')).toBe(2);
    expect(await scalar('max(socketbridge_cluster_workers{job="state"})')).toBe(3);
    expect(await scalar('sum(socketbridge_connections)')).toBe(4);
    expect(await scalar('count(socketbridge_broker_messages_total)')).toBe(2);
    expect(await scalar('sum(rate(socketbridge_broker_messages_total[30s]))')).toBeGreaterThan(0);
    expect(await scalar('sum(socketbridge_messages_dead_lettered_total{reason="unparseable"})')).toBe(1);
    expect(await scalar('sum(socketbridge_recoveries_total{outcome="recovered"})')).toBeGreaterThanOrEqual(4);
    expect(await scalar('histogram_quantile(0.99, sum by (le) (rate(socketbridge_publish_to_delivery_seconds_bucket[30s])))')).toBeLessThan(5);
  });
});
