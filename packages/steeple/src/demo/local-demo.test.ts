// `npm run demo:agent` end to end: a real server, agent and three workload processes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runLocalDemo } from './local-demo.js';

describe('npm run demo:agent', () => {
  it('issues identities through the Workload API, authorizes the call by SPIFFE ID, and refuses a stranger', async () => {
    const lines: string[] = [];
    const result = await runLocalDemo((l) => lines.push(l));
    assert.match(
      result.reply,
      /^hello spiffe:\/\/demo\.example\.org\/frontend\/web, spiffe:\/\/demo\.example\.org\/billing\/api here/,
    );
    if (result.rootMode) {
      assert.equal(result.refused?.['event'], 'refused');
      assert.equal(result.refused?.['grpcCode'], 7, 'PermissionDenied');
    }
    assert.ok(lines.at(-1)?.startsWith('Done:'));
  });
});
