// The wire contracts, checked from the generated descriptors: the SPIFFE Workload API must be
// exactly the standard one (spec/spiffe-conformance.md §7) so that unmodified go-spiffe,
// java-spiffe and py-spiffe clients work; a wrong field number would still compile and
// round-trip in our own tests, which is why this test spells the table out.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { create, type DescField, type DescMessage, fromBinary, ScalarType, toBinary } from '@bufbuild/protobuf';
import * as workload from '../packages/spiffe/src/gen/spiffe/workload/workload_pb.js';
import * as agentApi from '../packages/steeple/src/gen/steeple/agent/v1/agent_pb.js';
import * as entryApi from '../packages/steeple/src/gen/steeple/server/v1/entry_pb.js';
import * as trustDomainApi from '../packages/steeple/src/gen/steeple/server/v1/trust_domain_pb.js';
import { EntrySchema } from '../packages/steeple/src/gen/steeple/types/v1/entry_pb.js';

const root = resolve(import.meta.dirname, '..');

/** A field's type as the .proto source spells it: `string`, `repeated bytes`, `map<string, bytes>`, `X509SVID`. */
function protoType(field: DescField): string {
  const scalar = (t: ScalarType) => (ScalarType[t] as string).toLowerCase();
  switch (field.fieldKind) {
    case 'scalar':
      return scalar(field.scalar);
    case 'enum':
      return field.enum.typeName;
    case 'message':
      return field.message.typeName;
    case 'list':
      return `repeated ${field.listKind === 'scalar' ? scalar(field.scalar) : field.listKind === 'enum' ? field.enum.typeName : field.message.typeName}`;
    case 'map': {
      const value =
        field.mapKind === 'scalar'
          ? scalar(field.scalar)
          : field.mapKind === 'enum'
            ? field.enum.typeName
            : field.message.typeName;
      return `map<${scalar(field.mapKey)}, ${value}>`;
    }
  }
}

/** `number name type` for every field, in field-number order. */
function fieldsOf(message: DescMessage): string[] {
  return [...message.fields].sort((a, b) => a.number - b.number).map((f) => `${f.number} ${f.name} ${protoType(f)}`);
}

// spiffe-conformance.md §7, message table, verbatim.
const standardMessages: Record<string, string[]> = {
  X509SVIDRequest: [],
  X509SVIDResponse: ['1 svids repeated X509SVID', '2 crl repeated bytes', '3 federated_bundles map<string, bytes>'],
  X509SVID: ['1 spiffe_id string', '2 x509_svid bytes', '3 x509_svid_key bytes', '4 bundle bytes', '5 hint string'],
  X509BundlesRequest: [],
  X509BundlesResponse: ['1 crl repeated bytes', '2 bundles map<string, bytes>'],
  JWTSVIDRequest: ['1 audience repeated string', '2 spiffe_id string'],
  JWTSVIDResponse: ['1 svids repeated JWTSVID'],
  JWTSVID: ['1 spiffe_id string', '2 svid string', '3 hint string'],
  JWTBundlesRequest: [],
  JWTBundlesResponse: ['1 bundles map<string, bytes>'],
  ValidateJWTSVIDRequest: ['1 audience string', '2 svid string'],
  ValidateJWTSVIDResponse: ['1 spiffe_id string', '2 claims google.protobuf.Struct'],
  WITSVIDRequest: ['1 spiffe_id string'],
  WITSVIDResponse: ['1 svids repeated WITSVID'],
  WITSVID: ['1 spiffe_id string', '2 wit_svid string', '3 wit_svid_key string', '4 hint string'],
  WITBundlesRequest: [],
  WITBundlesResponse: ['1 bundles map<string, string>'],
};

// spiffe-conformance.md §7, RPC table: name, request, response, kind (W-2).
const standardMethods = [
  ['FetchX509SVID', 'X509SVIDRequest', 'X509SVIDResponse', 'server_streaming'],
  ['FetchX509Bundles', 'X509BundlesRequest', 'X509BundlesResponse', 'server_streaming'],
  ['FetchJWTSVID', 'JWTSVIDRequest', 'JWTSVIDResponse', 'unary'],
  ['FetchJWTBundles', 'JWTBundlesRequest', 'JWTBundlesResponse', 'server_streaming'],
  ['ValidateJWTSVID', 'ValidateJWTSVIDRequest', 'ValidateJWTSVIDResponse', 'unary'],
  ['FetchWITSVID', 'WITSVIDRequest', 'WITSVIDResponse', 'server_streaming'],
  ['FetchWITBundles', 'WITBundlesRequest', 'WITBundlesResponse', 'server_streaming'],
];

describe('SPIFFE Workload API contract (spiffe-conformance §7)', () => {
  const service = workload.SpiffeWorkloadAPI;

  it('has no proto package, so the service is "SpiffeWorkloadAPI" and paths are /SpiffeWorkloadAPI/<Rpc>', () => {
    assert.equal(workload.file_spiffe_workload_workload.proto.package, '');
    assert.equal(workload.file_spiffe_workload_workload.proto.syntax, 'proto3');
    assert.equal(service.typeName, 'SpiffeWorkloadAPI');
    assert.equal(`/${service.typeName}/${service.method.fetchX509SVID.name}`, '/SpiffeWorkloadAPI/FetchX509SVID');
  });

  it('W-2/E-6: exactly the seven standard RPCs, with their messages and stream kinds', () => {
    const actual = service.methods.map((m) => [m.name, m.input.typeName, m.output.typeName, m.methodKind]);
    assert.deepEqual(actual, standardMethods);
  });

  it('every message has exactly the standard field numbers, names and types', () => {
    const messages = workload.file_spiffe_workload_workload.messages;
    assert.deepEqual(messages.map((m) => m.typeName).sort(), Object.keys(standardMessages).sort());
    for (const message of messages) {
      assert.deepEqual(fieldsOf(message), standardMessages[message.typeName], `fields of ${message.typeName}`);
    }
  });

  it('field-order trap: X509BundlesResponse encodes crl as field 1 and bundles as field 2', () => {
    const msg = create(workload.X509BundlesResponseSchema, {
      crl: [new Uint8Array([0xaa])],
      bundles: { 'spiffe://example.org': new Uint8Array([0xbb]) },
    });
    const bytes = toBinary(workload.X509BundlesResponseSchema, msg);
    assert.equal(bytes[0], (1 << 3) | 2, 'first tag is field 1, length-delimited (crl)');
    assert.equal(bytes[3], (2 << 3) | 2, 'second tag is field 2, length-delimited (bundles map entry)');
  });

  it('ValidateJWTSVIDRequest.audience is one string on the wire, not a list', () => {
    const bytes = toBinary(
      workload.ValidateJWTSVIDRequestSchema,
      create(workload.ValidateJWTSVIDRequestSchema, { audience: 'db' }),
    );
    assert.deepEqual([...bytes], [0x0a, 2, 0x64, 0x62]);
  });

  it('X509SVIDResponse round-trips through the binary encoding', () => {
    const msg = create(workload.X509SVIDResponseSchema, {
      svids: [
        {
          spiffeId: 'spiffe://example.org/web',
          x509Svid: new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]),
          x509SvidKey: new Uint8Array([0x30, 0x00]),
          bundle: new Uint8Array([0x30, 0x01, 0x00]),
          hint: 'internal',
        },
      ],
      crl: [new Uint8Array([1, 2, 3])],
      federatedBundles: { 'spiffe://partner.org': new Uint8Array([4, 5]) },
    });
    const back = fromBinary(workload.X509SVIDResponseSchema, toBinary(workload.X509SVIDResponseSchema, msg));
    assert.deepEqual(back, msg);
  });

  it('ValidateJWTSVIDResponse carries claims as a google.protobuf.Struct (a JSON object in TS)', () => {
    const claims = { sub: 'spiffe://example.org/web', aud: ['db'], exp: 1900000000 };
    const msg = create(workload.ValidateJWTSVIDResponseSchema, { spiffeId: 'spiffe://example.org/web', claims });
    const back = fromBinary(
      workload.ValidateJWTSVIDResponseSchema,
      toBinary(workload.ValidateJWTSVIDResponseSchema, msg),
    );
    assert.deepEqual(back.claims, claims);
  });

  it('the SDK and the agent are generated from the same Workload API (identical files)', () => {
    const path = 'src/gen/spiffe/workload/workload_pb.ts';
    const sdk = readFileSync(resolve(root, 'packages/spiffe', path), 'utf8');
    const product = readFileSync(resolve(root, 'packages/steeple', path), 'utf8');
    assert.equal(sdk, product, 'run `npm run gen`');
  });
});

describe('Steeple Agent API contract (steeple.agent.v1)', () => {
  it('AttestAgent is bidirectional, WatchChanges streams from the server, the rest are unary', () => {
    const service = agentApi.AgentApiService;
    assert.equal(service.typeName, 'steeple.agent.v1.AgentApiService');
    assert.deepEqual(
      service.methods.map((m) => [m.name, m.methodKind]),
      [
        ['AttestAgent', 'bidi_streaming'],
        ['RenewAgent', 'unary'],
        ['SyncAuthorizedEntries', 'unary'],
        ['WatchChanges', 'server_streaming'],
        ['BatchNewX509Svid', 'unary'],
        ['NewJwtSvid', 'unary'],
        ['GetBundles', 'unary'],
      ],
    );
  });

  it('an attestation step (oneof) round-trips', () => {
    const first = create(agentApi.AttestAgentRequestSchema, {
      step: {
        case: 'params',
        value: {
          data: { type: 'join_token', payload: new TextEncoder().encode('t0k3n') },
          csr: new Uint8Array([0x30]),
        },
      },
    });
    const back = fromBinary(agentApi.AttestAgentRequestSchema, toBinary(agentApi.AttestAgentRequestSchema, first));
    assert.equal(back.step.case, 'params');
    assert.deepEqual(back, first);
  });

  it('a batch signing response keeps a status per item, so one refusal does not hide the others', () => {
    const msg = create(agentApi.BatchNewX509SvidResponseSchema, {
      results: [
        {
          status: { code: 0 },
          entryId: 'e1',
          svid: {
            spiffeId: 'spiffe://example.org/a',
            certChain: [new Uint8Array([0x30, 0x00])],
            expiresAt: 1900000000n,
          },
        },
        { status: { code: 7, message: 'entry "e2" is not authorized for this agent' }, entryId: 'e2' },
      ],
    });
    const back = fromBinary(
      agentApi.BatchNewX509SvidResponseSchema,
      toBinary(agentApi.BatchNewX509SvidResponseSchema, msg),
    );
    assert.deepEqual(back, msg);
    assert.equal(back.results[1]?.svid, undefined);
  });

  it('a delta sync carries entries with 64-bit revisions and deleted ids', () => {
    const entry = create(EntrySchema, {
      id: 'e1',
      spiffeId: 'spiffe://example.org/web',
      parentId: 'spiffe://example.org/spire/agent/join_token/abc',
      selectors: [{ type: 'unix', value: 'uid:1000' }],
      federatesWith: ['partner.org'],
      revisionNumber: 2n ** 60n,
    });
    const msg = create(agentApi.SyncAuthorizedEntriesResponseSchema, {
      revision: 2n ** 60n,
      full: false,
      entries: [entry],
      deletedEntryIds: ['e0'],
    });
    const schema = agentApi.SyncAuthorizedEntriesResponseSchema;
    assert.deepEqual(fromBinary(schema, toBinary(schema, msg)), msg);
  });
});

describe('Steeple admin API contract (steeple.server.v1)', () => {
  it('an entry filter keeps presence: an unset by_spiffe_id differs from an empty one', () => {
    const schema = entryApi.ListEntriesRequestSchema;
    const unset = fromBinary(schema, toBinary(schema, create(schema, { filter: {} })));
    const empty = fromBinary(schema, toBinary(schema, create(schema, { filter: { bySpiffeId: '' } })));
    assert.equal(unset.filter?.bySpiffeId, undefined);
    assert.equal(empty.filter?.bySpiffeId, '');
  });

  it('selector match modes are EXACT, SUBSET, SUPERSET and ANY', () => {
    assert.deepEqual(
      entryApi.MatchBehaviorSchema.values.map((v) => v.name),
      [
        'MATCH_BEHAVIOR_UNSPECIFIED',
        'MATCH_BEHAVIOR_EXACT',
        'MATCH_BEHAVIOR_SUBSET',
        'MATCH_BEHAVIOR_SUPERSET',
        'MATCH_BEHAVIOR_ANY',
      ],
    );
  });

  it('a federation relationship keeps its first five field numbers; source and status were added after them', () => {
    assert.deepEqual(fieldsOf(trustDomainApi.FederationRelationshipSchema), [
      '1 trust_domain string',
      '2 bundle_endpoint_url string',
      '3 https_web steeple.server.v1.HttpsWebProfile',
      '4 https_spiffe steeple.server.v1.HttpsSpiffeProfile',
      '5 trust_domain_bundle steeple.types.v1.Bundle',
      '6 source string',
      '7 status steeple.server.v1.FederationRelationshipStatus',
    ]);
  });
});
