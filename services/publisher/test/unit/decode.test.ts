import { describe, expect, it } from 'vitest';
import { decodeBody } from '../../src/decode.js';

const bytes = (text: string) => Buffer.from(text);
const notUtf8 = Buffer.from([0xff, 0xfe, 0x00, 0x41]);

describe('decodeBody', () => {
  it('parses JSON bodies, charset parameters and +json types included', () => {
    expect(decodeBody(bytes('{"a":1}'), 'application/json')).toEqual({ ok: true, data: { a: 1 } });
    expect(decodeBody(bytes('[1]'), 'Application/JSON; charset=utf-8')).toEqual({ ok: true, data: [1] });
    expect(decodeBody(bytes('"x"'), 'application/vnd.api+json')).toEqual({ ok: true, data: 'x' });
  });

  it('refuses JSON that does not parse or is not UTF-8, naming why', () => {
    expect(decodeBody(bytes('{nope'), 'application/json')).toMatchObject({ ok: false, detail: expect.stringContaining('does not parse') });
    expect(decodeBody(notUtf8, 'application/json')).toEqual({ ok: false, detail: 'content-type says JSON but the body is not UTF-8' });
  });

  it('keeps text as a string and refuses text that is not UTF-8', () => {
    expect(decodeBody(bytes('{"a":1}'), 'text/plain')).toEqual({ ok: true, data: '{"a":1}' });
    expect(decodeBody(notUtf8, 'text/csv')).toMatchObject({ ok: false });
  });

  it('guesses without a content type: JSON, else text, else base64', () => {
    expect(decodeBody(bytes('{"a":1}'))).toEqual({ ok: true, data: { a: 1 } });
    expect(decodeBody(bytes('hello'))).toEqual({ ok: true, data: 'hello' });
    expect(decodeBody(notUtf8)).toEqual({ ok: true, data: { contentType: 'application/octet-stream', encoding: 'base64', body: notUtf8.toString('base64') } });
  });

  it('passes other types and encoded bodies through as base64 with their type', () => {
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47]);
    expect(decodeBody(png, 'image/png')).toEqual({ ok: true, data: { contentType: 'image/png', encoding: 'base64', body: png.toString('base64') } });
    expect(decodeBody(bytes('{"a":1}'), 'application/json', 'gzip')).toEqual({
      ok: true,
      data: { contentType: 'application/json', encoding: 'base64', body: bytes('{"a":1}').toString('base64') },
    });
    expect(decodeBody(bytes('{"a":1}'), 'application/json', 'UTF-8')).toEqual({ ok: true, data: { a: 1 } });
  });
});
