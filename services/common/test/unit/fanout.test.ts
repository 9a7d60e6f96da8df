import { describe, expect, it } from 'vitest';
import * as ws from 'ws';
import { textFrame } from '../../src/fanout.js';

/** ws's frame parser, which its types leave out: the code every ws client reads frames with. */
interface FrameReceiver {
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): void;
  on(event: 'error', listener: (error: Error) => void): void;
  write(chunk: Buffer): void;
}
const { Receiver } = ws as unknown as { Receiver: new (options: { isServer: boolean; maxPayload: number }) => FrameReceiver };

/** Parses a frame with ws's own receiver (what a client runs), returning the text it carries. */
function parse(frame: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    // A client-side receiver: server frames are unmasked, as textFrame writes them.
    const receiver = new Receiver({ isServer: false, maxPayload: 0 });
    receiver.on('message', (data, isBinary) => (isBinary ? reject(new Error('binary frame')) : resolve(data.toString())));
    receiver.on('error', reject);
    receiver.write(frame);
  });
}

describe('textFrame', () => {
  // Each length form of RFC 6455 and both sides of its boundaries: 7-bit, 16-bit, 64-bit.
  for (const [length, header] of [[0, 2], [125, 2], [126, 4], [65535, 4], [65536, 10], [70000, 10]] as const) {
    it(`frames ${length} bytes with a ${header}-byte header that ws reads back`, async () => {
      const payload = Buffer.from('x'.repeat(length));
      const frame = textFrame(payload);
      expect(frame.length).toBe(header + length);
      expect(frame[0]).toBe(0x81);
      expect(await parse(frame)).toBe(payload.toString());
    });
  }

  it('carries multi-byte UTF-8 unchanged', async () => {
    const text = JSON.stringify({ event: '#publish', data: { channel: 'c', data: 'héllo ✓ 😀' } });
    expect(await parse(textFrame(Buffer.from(text)))).toBe(text);
  });
});
