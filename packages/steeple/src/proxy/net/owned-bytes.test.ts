import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeRequestParts } from '../audit/audit-log.js';
import { ownedBuffer, ownedCopy } from './owned-bytes.js';

/** A Buffer from the shared pool sits in a larger ArrayBuffer (the 8 KiB slab it keeps alive). */
const ownsItsMemory = (b: Buffer) => b.byteOffset === 0 && b.buffer.byteLength === b.length;

describe('owned bytes', () => {
  it('encodes and copies into memory of their own, where Buffer.from would take a pool slice', () => {
    assert.equal(ownsItsMemory(Buffer.from('x-forwarded-client-cert: By=a\r\n', 'latin1')), false);
    const text = ownedBuffer('x-forwarded-client-cert: By=é\r\n', 'utf8');
    assert.ok(ownsItsMemory(text));
    assert.equal(text.toString('utf8'), 'x-forwarded-client-cert: By=é\r\n');
    const copy = ownedCopy(Buffer.from('"GET","path":"/a"'));
    assert.ok(ownsItsMemory(copy));
    assert.equal(copy.toString(), '"GET","path":"/a"');
  });

  it('holds the audit record parts a connection keeps for its lifetime', () => {
    const parts = encodeRequestParts('"type":"request"', ',"decision":"allow"', ',"tls_version":"TLSv1.3"');
    assert.ok(ownsItsMemory(parts.mid));
    assert.ok(ownsItsMemory(parts.end));
  });
});
