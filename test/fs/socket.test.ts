// ackPromptly (native/socket.cc): hooks a real TCP socket (TCP_QUICKACK accepted by the
// kernel), leaves what it reads intact, and declines what has no TCP descriptor.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer } from 'node:net';
import { EventEmitter } from 'node:events';
import { ackPromptly } from '../../src/fs/fuse-binding.js';

describe('ackPromptly', () => {
  it('hooks a TCP socket; its bytes arrive intact', async () => {
    const payload = Buffer.alloc(300_000, 3);
    const server = createServer((s) => {
      s.setNoDelay(false);
      s.write('head');
      s.end(payload);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as { port: number }).port;
      const sock = connect(port, '127.0.0.1');
      await new Promise<void>((r) => sock.once('connect', () => r()));
      assert.equal(ackPromptly(sock as unknown as Parameters<typeof ackPromptly>[0]), true);
      const parts: Buffer[] = [];
      sock.on('readable', () => {
        for (let b = sock.read() as Buffer | null; b !== null; b = sock.read() as Buffer | null) parts.push(b);
      });
      await new Promise<void>((r) => sock.once('end', () => r()));
      assert.ok(Buffer.concat(parts).equals(Buffer.concat([Buffer.from('head'), payload])));
    } finally {
      server.close();
    }
  });

  it('declines a socket without a TCP descriptor', () => {
    assert.equal(ackPromptly(new EventEmitter() as unknown as Parameters<typeof ackPromptly>[0]), false);
  });
});
