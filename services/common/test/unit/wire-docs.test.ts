import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CLIENT_EVENTS, CLOSE_CODES, LIFECYCLE_EVENTS, RECOVER_OUTCOMES, REFUSAL_REASONS, RESERVED_CHANNELS, SOCKET_ERRORS } from '../../src/wire.js';

const doc = readFileSync(new URL('../../../../docs/cluster-protocol.md', import.meta.url), 'utf8');

/** The rows of the markdown table whose header row starts with `| <first> |`, as cells without backticks. */
function table(first: string): string[][] {
  const lines = doc.split('\n');
  const start = lines.findIndex((line) => line.startsWith(`| ${first} |`));
  if (start < 0) throw new Error(`docs/cluster-protocol.md has no table headed "${first}"`);
  const rows: string[][] = [];
  for (let i = start + 2; i < lines.length && lines[i]!.startsWith('|'); i++) {
    rows.push(lines[i]!.split('|').slice(1, -1).map((cell) => cell.trim().replaceAll('`', '')));
  }
  return rows;
}

describe('docs/cluster-protocol.md against the wire contract (common/src/wire.ts)', () => {
  it('lists every close code, by number and name, and no other', () => {
    const documented = table('close code').map(([code, name]) => [name, Number(code)]);
    expect(Object.fromEntries(documented)).toEqual(CLOSE_CODES);
    expect(documented).toHaveLength(Object.keys(CLOSE_CODES).length);
  });

  it('lists every error name a client may receive, and no other', () => {
    const documented = table('error name').map(([name]) => name);
    expect(documented.sort()).toEqual(Object.keys(SOCKET_ERRORS).sort());
  });

  it('lists every reserved cluster channel and client event, by name and constant, and no other', () => {
    const documented = table('reserved name').map(([name, constant]) => [constant, name]);
    const inWire = [
      ...Object.entries(RESERVED_CHANNELS).map(([key, name]) => [`RESERVED_CHANNELS.${key}`, name]),
      ...Object.entries(CLIENT_EVENTS).map(([key, name]) => [`CLIENT_EVENTS.${key}`, name]),
    ];
    expect(Object.fromEntries(documented)).toEqual(Object.fromEntries(inWire));
    expect(documented).toHaveLength(inWire.length);
    // Reserved cluster channels are names no client may use.
    for (const name of Object.values(RESERVED_CHANNELS)) expect(name.startsWith('#')).toBe(true);
  });

  it('lists every lifecycle event with what the contract says of it, and no other', () => {
    expect(Object.fromEntries(table('lifecycle event'))).toEqual(LIFECYCLE_EVENTS);
  });

  it('names every refusal reason and recover outcome the metrics start at zero', () => {
    const section = doc.slice(doc.indexOf('Refusals are counted by reason'));
    for (const reason of [...Object.values(REFUSAL_REASONS).flat(), ...RECOVER_OUTCOMES]) expect(section).toContain(`\`${reason}\``);
  });

  it('keeps close codes distinct, and ours in the range where socketcluster-client reconnects', () => {
    const codes = Object.values(CLOSE_CODES);
    expect(new Set(codes).size).toBe(codes.length);
    // Below 4500 (and not 1000) socketcluster-client reconnects by itself: draining and slow clients must come back.
    expect(CLOSE_CODES.draining).toBeLessThan(4500);
    expect(CLOSE_CODES.slowClient).toBeLessThan(4500);
    expect(CLOSE_CODES.disconnectedReconnect).toBeLessThan(4500);
    // An admin's "do not reconnect" must stay closed: socketcluster-client gives up at 4500 and above.
    expect(CLOSE_CODES.disconnectedNoReconnect).toBeGreaterThanOrEqual(4500);
  });
});
