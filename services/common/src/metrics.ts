import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
export type { CounterConfiguration } from 'prom-client';

export { Counter, Gauge, Histogram, Registry };

/** Every service's registry: default process metrics plus a `service` label on all series. */
export function createRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}
