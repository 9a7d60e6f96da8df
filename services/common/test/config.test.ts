import { describe, expect, it } from 'vitest';
import { ConfigError, env, loadConfig } from '../src/config.js';

const shape = {
  PORT: env.port(7777),
  DELAY_MS: env.ms(1000),
  ENABLED: env.bool(false),
  NAME: env.optionalString(),
};

describe('loadConfig', () => {
  it('applies defaults for unset and empty variables', () => {
    expect(loadConfig(shape, { DELAY_MS: '' })).toEqual({ PORT: 7777, DELAY_MS: 1000, ENABLED: false, NAME: undefined });
  });

  it('coerces strings', () => {
    expect(loadConfig(shape, { PORT: '0', DELAY_MS: '25', ENABLED: 'yes', NAME: 'x' })).toEqual({ PORT: 0, DELAY_MS: 25, ENABLED: true, NAME: 'x' });
  });

  it('names every bad variable and what it got', () => {
    let error: unknown;
    try {
      loadConfig(shape, { PORT: '70000', ENABLED: 'maybe', DELAY_MS: '-1' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/PORT: .*\(got "70000"\)/);
    expect(message).toMatch(/ENABLED: expected true or false \(got "maybe"\)/);
    expect(message).toMatch(/DELAY_MS: .*\(got "-1"\)/);
  });
});
