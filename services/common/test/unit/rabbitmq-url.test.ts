import { describe, expect, it } from 'vitest';
import { ConfigError, env, loadConfig } from '../../src/config.js';
import { parseRabbitUrls, redactUrl } from '../../src/rabbitmq.js';

describe('SOCKETBRIDGE_RABBITMQ_URL', () => {
  it('reads one URL or a comma-separated list of nodes, each a whole URL', () => {
    expect(parseRabbitUrls('amqp://guest:guest@127.0.0.1:5672')).toEqual(['amqp://guest:guest@127.0.0.1:5672']);
    expect(parseRabbitUrls('amqp://u:p@rabbit-0:5672/v, amqps://u:p@rabbit-1:5671/v ,amqp://[::1]:5673')).toEqual([
      'amqp://u:p@rabbit-0:5672/v',
      'amqps://u:p@rabbit-1:5671/v',
      'amqp://[::1]:5673',
    ]);
  });

  it('refuses what is not an amqp(s):// URL, naming the entry without its password', () => {
    expect(() => parseRabbitUrls('http://rabbit:5672')).toThrow('"http://rabbit:5672" is not an amqp:// or amqps:// URL');
    expect(() => parseRabbitUrls('amqp://u:secret@a:5672,,amqp://b')).toThrow('"" is not an amqp:// or amqps:// URL');
    expect(() => parseRabbitUrls('amqp://u:secret@a:5672,rabbit-b:5672')).toThrow('"rabbit-b:5672" is not');
    expect(() => parseRabbitUrls('amqp://u:secret@a:99999')).toThrow('"amqp://u:***@a:99999" is not a valid URL');
  });

  it('stops a service at start with the reason', () => {
    const shape = { SOCKETBRIDGE_RABBITMQ_URL: env.rabbitmqUrl('amqp://127.0.0.1:5672') };
    expect(loadConfig(shape, {}).SOCKETBRIDGE_RABBITMQ_URL).toBe('amqp://127.0.0.1:5672');
    expect(loadConfig(shape, { SOCKETBRIDGE_RABBITMQ_URL: 'amqp://a:5672,amqp://b:5672' }).SOCKETBRIDGE_RABBITMQ_URL).toBe('amqp://a:5672,amqp://b:5672');
    expect(() => loadConfig(shape, { SOCKETBRIDGE_RABBITMQ_URL: 'amqp://u:pw@a:5672;amqp://b' })).toThrow(ConfigError);
    expect(() => loadConfig({ SOCKETBRIDGE_RABBITMQ_URL: env.optionalRabbitmqUrl() }, { SOCKETBRIDGE_RABBITMQ_URL: 'rabbit:5672' })).toThrow('is not an amqp://');
    expect(loadConfig({ SOCKETBRIDGE_RABBITMQ_URL: env.optionalRabbitmqUrl() }, {}).SOCKETBRIDGE_RABBITMQ_URL).toBeUndefined();
  });

  it('redacts every password of a list', () => {
    expect(redactUrl('amqp://u:a@n1:5672,amqp://u:b@n2:5672')).toBe('amqp://u:***@n1:5672,amqp://u:***@n2:5672');
  });
});
