#!/usr/bin/env node
// The README's pictures, made from a real run: a local cluster under traffic, scraped by Debian's
// Prometheus. docs/images/console.png is the web console (in Debian's Chromium) tailing a channel;
// docs/images/dashboard.png draws the overview dashboard's panels from Prometheus's answers.
//
//   npm run build && node scripts/dist/observability/screenshots.js [--seconds 90]
//
// Needs RabbitMQ, Redis, `prometheus` and `chromium` (apt-get install prometheus chromium).
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { AmqpProducer, LocalCluster, killAll, rabbitNames, repoRoot, waitFor } from '@socketbridge/devkit';
import { fillVariables, loadDashboards, type Panel } from './dashboards.js';
import { Prometheus, clusterTargets } from './prometheus.js';
import { Traffic } from './traffic.js';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const BROWSER_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const imagesDir = join(repoRoot, 'docs', 'images');

interface Series {
  name: string;
  points: Array<[number, number]>;
}

interface Drawn {
  title: string;
  unit: string;
  kind: 'stat' | 'timeseries';
  series: Series[];
}

const palette = ['#73bf69', '#f2cc0c', '#5794f2', '#ff780a', '#b877d9', '#f2495c', '#37872d', '#8ab8ff'];

function format(value: number, unit: string): string {
  if (!Number.isFinite(value)) return '–';
  if (unit === 's') return value >= 1 ? `${value.toFixed(2)} s` : `${(value * 1000).toFixed(value < 0.01 ? 2 : 1)} ms`;
  if (unit === 'ops') return `${value >= 100 ? value.toFixed(0) : value.toFixed(1)}/s`;
  if (unit === 'bytes') return `${(value / 1048576).toFixed(0)} MiB`;
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

function legend(template: string, metric: Record<string, string>): string {
  return template.replace(/\{\{\s*(\w+)\s*\}\}/g, (_m, name: string) => metric[name] ?? '') || JSON.stringify(metric);
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}

function chartSvg(panel: Drawn, width: number, height: number): string {
  const pad = { left: 62, right: 12, top: 8, bottom: 22 };
  const all = panel.series.flatMap((s) => s.points).filter(([, v]) => Number.isFinite(v));
  if (!all.length) return `<svg width="${width}" height="${height}"><text x="12" y="30" fill="#8e8e8e">no data</text></svg>`;
  const t0 = Math.min(...all.map(([t]) => t));
  const t1 = Math.max(...all.map(([t]) => t));
  const vmax = Math.max(...all.map(([, v]) => v)) * 1.1 || 1;
  const x = (t: number) => pad.left + ((t - t0) / Math.max(1, t1 - t0)) * (width - pad.left - pad.right);
  const y = (v: number) => height - pad.bottom - (v / vmax) * (height - pad.top - pad.bottom);
  const grid = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => {
      const v = vmax * f;
      return `<line x1="${pad.left}" x2="${width - pad.right}" y1="${y(v)}" y2="${y(v)}" stroke="#2c3235"/><text x="${pad.left - 6}" y="${y(v) + 4}" text-anchor="end">${escapeXml(format(v, panel.unit))}</text>`;
    })
    .join('');
  const times = [0, 0.5, 1]
    .map((f) => {
      const t = t0 + (t1 - t0) * f;
      const label = new Date(t * 1000).toISOString().slice(11, 19);
      return `<text x="${x(t)}" y="${height - 5}" text-anchor="${f === 0 ? 'start' : f === 1 ? 'end' : 'middle'}">${label}</text>`;
    })
    .join('');
  const lines = panel.series
    .map((s, i) => {
      const d = s.points
        .filter(([, v]) => Number.isFinite(v))
        .map(([t, v], j) => `${j ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`)
        .join('');
      return `<path d="${d}" fill="none" stroke="${palette[i % palette.length]}" stroke-width="1.5"/>`;
    })
    .join('');
  return `<svg width="${width}" height="${height}" font-size="10" fill="#8e8e8e">${grid}${times}${lines}</svg>`;
}

function dashboardHtml(title: string, panels: Drawn[]): string {
  const stats = panels.filter((p) => p.kind === 'stat');
  const charts = panels.filter((p) => p.kind === 'timeseries');
  const statHtml = stats
    .map((p) => {
      const last = p.series[0]?.points.at(-1)?.[1] ?? Number.NaN;
      return `<div class="panel stat"><h3>${escapeXml(p.title)}</h3><b>${escapeXml(format(last, p.unit))}</b></div>`;
    })
    .join('');
  const chartHtml = charts
    .map((p) => {
      const keys = p.series
        .map((s, i) => `<span><i style="background:${palette[i % palette.length]}"></i>${escapeXml(s.name)}</span>`)
        .join('');
      return `<div class="panel"><h3>${escapeXml(p.title)}</h3>${chartSvg(p, 600, 170)}<div class="legend">${keys}</div></div>`;
    })
    .join('');
  return `<!doctype html><html><head><meta charset="utf-8"><style>
  body { margin: 0; background: #111217; color: #ccccdc; font: 12px system-ui, sans-serif; padding: 12px; width: 1256px; }
  h1 { font-size: 16px; margin: 2px 4px 12px; font-weight: 500; } h1 span { color: #8e8e8e; font-weight: normal; }
  .stats { display: grid; grid-template-columns: repeat(6, 1fr); gap: 8px; margin-bottom: 8px; }
  .charts { display: grid; grid-template-columns: repeat(2, 1fr); gap: 8px; }
  .panel { background: #181b1f; border: 1px solid #24292e; border-radius: 3px; padding: 8px 10px; }
  .panel h3 { margin: 0 0 6px; font-size: 12px; font-weight: 500; }
  .stat b { display: block; font-size: 26px; color: #73bf69; font-weight: 500; }
  .legend { display: flex; flex-wrap: wrap; gap: 10px; color: #ccccdc; font-size: 11px; }
  .legend i { display: inline-block; width: 12px; height: 3px; margin-right: 4px; vertical-align: middle; }
  </style></head><body><h1>${escapeXml(title)} <span>· Prometheus, last ${Math.round(spanSeconds / 60)} min, local cluster</span></h1>
  <div class="stats">${statHtml}</div><div class="charts">${chartHtml}</div></body></html>`;
}

let spanSeconds = 120;

async function drawOverview(prometheus: Prometheus): Promise<{ title: string; panels: Drawn[] }> {
  const overview = loadDashboards().find((d) => d.file === 'overview.json')!.dashboard;
  const panels: Drawn[] = [];
  const walk = (list: Panel[]): Panel[] => list.flatMap((p) => [p, ...walk(p.panels ?? [])]);
  for (const panel of walk(overview.panels)) {
    if (panel.type !== 'stat' && panel.type !== 'timeseries') continue;
    const unit = (panel as { fieldConfig?: { defaults?: { unit?: string } } }).fieldConfig?.defaults?.unit ?? 'short';
    const series: Series[] = [];
    for (const target of panel.targets ?? []) {
      if (!target.expr) continue;
      const { result } = await prometheus.queryRange(fillVariables(target.expr), spanSeconds, 2);
      for (const row of result) {
        series.push({ name: legend(target.legendFormat ?? '', row.metric), points: (row.values ?? []).map(([t, v]) => [t, Number(v)]) });
      }
    }
    panels.push({ title: panel.title ?? '', unit, kind: panel.type, series });
  }
  return { title: overview.title, panels };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '120' } } });
  spanSeconds = Math.max(30, Number(values.seconds) || 120);
  mkdirSync(imagesDir, { recursive: true });
  const names = rabbitNames('screenshots');
  console.log('starting a cluster (state, 2 brokers, 2 workers, a publisher) and Prometheus…');
  const cluster = await LocalCluster.start({ brokers: 2, workers: 2, publishers: 1, env: names });
  const prometheus = await Prometheus.start(clusterTargets(cluster), { opsKey: cluster.env.SOCKETBRIDGE_OPS_KEY });
  const traffic = await Traffic.start(cluster, names, 3);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: BROWSER_ARGS });
  try {
    // A varying load, so the charts have a shape: quiet, busy, quiet again; refusals and a dead letter on the way.
    const started = Date.now();
    traffic.trickle(400);
    let phase = 0;
    await waitFor(
      async () => {
        const elapsed = (Date.now() - started) / 1000;
        const nextPhase = Math.floor((elapsed / spanSeconds) * 4);
        if (nextPhase !== phase) {
          phase = nextPhase;
          traffic.intervalMs = [400, 60, 150, 300][phase] ?? 300;
          if (phase === 1) await traffic.refusals();
          if (phase === 2) await traffic.deadLetter();
          console.log(`  ${Math.round(elapsed)} s: ${traffic.counts.published} published, ${traffic.counts.received} received`);
        }
        return elapsed >= spanSeconds;
      },
      spanSeconds * 1000 + 60000,
      `${spanSeconds} s of traffic`,
      500,
    );

    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    const base = `http://127.0.0.1:${cluster.publishers[0]!.port}`;
    await page.goto(`${base}/console?key=${cluster.env.SOCKETBRIDGE_API_KEY}`);
    await page.locator('.member[data-kind="worker"]').nth(1).waitFor({ timeout: 20000 });
    await page.locator('#bridges tr').first().waitFor({ timeout: 20000 });
    await page.fill('#tail-channel', 'broadcast');
    await page.click('#tail-start');
    await waitFor(async () => (await page.locator('#tail li.msg').count()) >= 8, 30000, 'broadcasts in the console tail', 200);
    await page.screenshot({ path: join(imagesDir, 'console.png') });

    const { title, panels } = await drawOverview(prometheus);
    const chart = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await chart.setContent(dashboardHtml(title, panels));
    await chart.screenshot({ path: join(imagesDir, 'dashboard.png'), fullPage: true });
    for (const file of ['console.png', 'dashboard.png']) console.log(`wrote docs/images/${file} (${Math.round(statSync(join(imagesDir, file)).size / 1024)} KiB)`);
  } finally {
    await browser.close();
    await traffic.stop();
    await prometheus.stop();
    const producer = await AmqpProducer.connect().catch(() => undefined);
    await producer?.deleteTopology(names);
    await producer?.close();
    await cluster.stop();
    await killAll();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
