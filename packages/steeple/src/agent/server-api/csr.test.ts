import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { describe, it } from 'node:test';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { AsnConvert } from '@peculiar/asn1-schema';
import { buildCsr, generateSvidKey } from './csr.js';

describe('agent CSRs', () => {
  it('are PKCS#10 v1 with an empty subject, the key’s SPKI and a self-signature that verifies', async () => {
    const keys = await generateSvidKey();
    const der = buildCsr(keys);
    const csr = AsnConvert.parse(der, CertificationRequest);
    const info = csr.certificationRequestInfo;
    assert.equal(info.version, 0);
    assert.equal(info.subject.length, 0);
    assert.equal(csr.signatureAlgorithm.algorithm, '1.2.840.10045.4.3.2');
    const spki = Buffer.from(AsnConvert.serialize(info.subjectPKInfo));
    assert.deepEqual(spki, keys.publicKey.export({ type: 'spki', format: 'der' }));
    const tbs = Buffer.from(AsnConvert.serialize(info));
    const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    assert.ok(verify('sha256', tbs, key, Buffer.from(csr.signature)));
  });
});
