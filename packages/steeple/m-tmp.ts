import { generateKeyPairSync, sign, verify, createPublicKey, KeyObject, webcrypto } from 'node:crypto';
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const spki = publicKey.export({format:'der', type:'spki'});
const raw = spki.subarray(spki.length - 65);
const comp = Buffer.concat([Buffer.from([2 + (raw[64]! & 1)]), raw.subarray(1, 33)]);
const jwk = publicKey.export({format:'jwk'});
const data = Buffer.alloc(300, 1); const s = sign('sha256', data, privateKey);
const alg = { name: 'ECDSA', namedCurve: 'P-256' };
const tests: Record<string, () => unknown> = {
  verify: () => verify('sha256', data, publicKey, s),
  sign: () => sign('sha256', data, privateKey),
  spki: () => createPublicKey({ key: spki, format: 'der', type: 'spki' }),
  jwk: () => createPublicKey({ key: jwk, format: 'jwk' }),
  subtleRaw: () => webcrypto.subtle.importKey('raw', raw, alg, true, ['verify']),
  subtleRawComp: () => webcrypto.subtle.importKey('raw', comp, alg, true, ['verify']),
};
const res: Record<string, number[]> = {};
for (let round = 0; round < 5; round++) for (const [k, fn] of Object.entries(tests)) {
  const n = 5000; const t = performance.now(); for (let i = 0; i < n; i++) await fn(); (res[k] ??= []).push((performance.now() - t) * 1000 / n);
}
for (const [k, v] of Object.entries(res)) console.log(k, Math.min(...v).toFixed(1));
