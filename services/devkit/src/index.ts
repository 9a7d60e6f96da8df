export * from './processes.js';
export * from './cluster.js';
export * from './clients.js';
export * from './publisher-api.js';
export * from './balancer.js';
export * from './testbed.js';
export * from './test-services.js';
export * from './rabbit-cluster.js';
