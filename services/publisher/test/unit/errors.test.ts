import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { API_ERRORS, ApiErrors, apiErrorOf, errorBody, kindOfStatus, type ApiErrorKind } from '../../src/errors.js';

const doc = readFileSync(new URL('../../../../docs/api.md', import.meta.url), 'utf8');

describe('the REST error catalogue (publisher/src/errors.ts)', () => {
  it('is the table in docs/api.md, row for row', () => {
    const lines = doc.split('\n');
    const start = lines.findIndex((line) => line.startsWith('| code | status |'));
    expect(start).toBeGreaterThan(0);
    const documented: string[][] = [];
    for (let i = start + 2; i < lines.length && lines[i]!.startsWith('|'); i++) {
      documented.push(lines[i]!.split('|').slice(1, -1).map((cell) => cell.trim().replaceAll('`', '')));
    }
    expect(documented).toEqual(Object.values(API_ERRORS).map((e) => [e.code, String(e.status), e.error, e.when]));
  });

  it('makes errors that carry their code and status, and are found again by code', () => {
    for (const kind of Object.keys(API_ERRORS) as ApiErrorKind[]) {
      const error = new ApiErrors[kind]('what to fix');
      expect(error).toBeInstanceOf(Error);
      expect(error.message).toBe('what to fix');
      expect(error.code).toBe(API_ERRORS[kind].code);
      expect(error.statusCode).toBe(API_ERRORS[kind].status);
      expect(apiErrorOf(error)).toBe(API_ERRORS[kind]);
    }
    expect(new Set(Object.values(API_ERRORS).map((e) => e.code)).size).toBe(Object.keys(API_ERRORS).length);
  });

  it('keeps a message with % in it as it is', () => {
    expect(new ApiErrors.InvalidChannel('100%s off %d').message).toBe('100%s off %d');
  });

  it('leaves errors from elsewhere to the status mapping', () => {
    expect(apiErrorOf(new Error('x'))).toBeUndefined();
    expect(apiErrorOf(Object.assign(new Error('x'), { code: 'FST_ERR_CTP_BODY_TOO_LARGE' }))).toBeUndefined();
    expect([413, 415, 429, 400, 406].map(kindOfStatus)).toEqual(['PayloadTooLarge', 'UnsupportedMediaType', 'TooManyRequests', 'BadRequest', 'BadRequest']);
  });

  it('answers with the names clients have always matched on', () => {
    expect(errorBody('BridgeOwned', 'm')).toEqual({ error: 'Conflict', message: 'm' });
    expect(errorBody('RegistryUnavailable', 'm')).toEqual({ error: 'ServiceUnavailable', message: 'm' });
  });
});
