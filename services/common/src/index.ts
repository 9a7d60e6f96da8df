export * from './config.js';
export * from './logger.js';
export * from './metrics.js';
export * from './metric-names.js';
export * from './http.js';
export * from './shutdown.js';
export * from './protocol.js';
export * from './wait.js';
