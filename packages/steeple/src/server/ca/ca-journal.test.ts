import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CaError } from './ca-errors.js';
import { type CaJournal, fileJournalStorage, journalPath, parseJournal, serializeJournal } from './ca-journal.js';
import { tempDir } from './test-support.js';

const journal: CaJournal = {
  trustDomain: 'example.org',
  x509: [
    {
      state: 'active',
      keyId: 'x509-ca-a',
      chain: [Buffer.from('ca'), Buffer.from('up')],
      upstreamRoots: [Buffer.from('root')],
    },
    { state: 'old', chain: [Buffer.from('old')], upstreamRoots: [] },
  ],
  jwt: [
    {
      state: 'prepared',
      keyId: 'jwt-signer-b',
      kid: 'abc',
      publicKey: Buffer.from('spki'),
      notBefore: new Date('2030-01-01T00:00:00Z'),
      notAfter: new Date('2030-01-02T00:00:00Z'),
    },
  ],
};

function refused(text: string, message: RegExp): void {
  assert.throws(
    () => parseJournal(text, '/data/ca-journal.json'),
    (e: unknown) =>
      e instanceof CaError &&
      e.code === 'ERR_CA_STATE_INVALID' &&
      e.message.includes('/data/ca-journal.json') &&
      message.test(e.message),
  );
}

describe('CA journal format', () => {
  it('round-trips every field', () => {
    assert.deepEqual(parseJournal(serializeJournal(journal), 'x'), journal);
  });

  it('names the problem and the file when it is unusable', () => {
    refused('{', /not valid JSON/);
    refused('[]', /must be an object/);
    refused('{"version":2}', /version 2 is not supported/);
    const doc = JSON.parse(serializeJournal(journal));
    refused(JSON.stringify({ ...doc, x509: [{ ...doc.x509[0], state: 'current' }] }), /x509\[0\]\.state/);
    refused(JSON.stringify({ ...doc, x509: [{ ...doc.x509[0], chain: [] }] }), /x509\[0\]\.chain must hold/);
    refused(
      JSON.stringify({ ...doc, x509: [{ ...doc.x509[0], chain: ['not base64!'] }] }),
      /chain\[0\] must be base64/,
    );
    refused(
      JSON.stringify({ ...doc, jwt: [{ ...doc.jwt[0], not_after: 'soon' }] }),
      /jwt\[0\]\.not_after must be an ISO date/,
    );
    refused(JSON.stringify({ ...doc, jwt: [{ ...doc.jwt[0], kid: '' }] }), /jwt\[0\]\.kid/);
  });
});

describe('fileJournalStorage', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    dir = await tempDir('journal');
  });
  after(() => dir.remove());

  it('saves atomically as a 0600 file, creating the data directory, and loads it back', async () => {
    const dataDir = join(dir.path, 'data');
    const storage = fileJournalStorage(journalPath(dataDir));
    assert.equal(await storage.load(), undefined, 'nothing saved yet');
    await storage.save('one');
    await storage.save('two');
    assert.equal(await storage.load(), 'two');
    assert.equal((await stat(journalPath(dataDir))).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dataDir), ['ca-journal.json']);
  });

  it('reports an unreadable journal as ERR_CA_STATE_INVALID', async () => {
    const storage = fileJournalStorage(dir.path); // a directory, not a file
    await assert.rejects(storage.load(), (e: unknown) => e instanceof CaError && e.code === 'ERR_CA_STATE_INVALID');
  });
});
