import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runSdkDemo } from './sdk-demo.js';

describe('SDK demo', () => {
  it('lets the allowed identity talk and refuses the other by SPIFFE ID', async () => {
    const lines: string[] = [];
    const result = await runSdkDemo((l) => lines.push(l));
    assert.match(result.allowed, /hello spiffe:\/\/example\.org\/frontend\/web/);
    assert.match(
      result.refused,
      /ERR_AUTHORIZATION_DENIED: peer spiffe:\/\/example\.org\/batch\/report is not authorized/,
    );
    assert.ok(lines.some((l) => l.includes('server refused a connection')));
  });
});
