/**
 * Registration entries from the command line: SPIRE's entry flags, and its `-data` JSON file
 * (`{"entries": [{"spiffe_id": …, "parent_id": …, "selectors": [{"type": …, "value": …}]}]}`).
 * The CLI checks only the shape; the server checks every value and names the field.
 * @module
 */
import { create } from '@bufbuild/protobuf';
import { type Command, Option } from 'commander';
import { type Entry, EntrySchema } from '../gen/steeple/types/v1/entry_pb.js';
import { SelectorSchema } from '../gen/steeple/types/v1/selector_pb.js';
import { CliError, collect, parseNonNegativeInteger, parseSelector, parseTtl, readInputFile } from './admin-command.js';

/** The entry flags as commander parses them. */
export interface EntryFlags {
  readonly spiffeID?: string;
  readonly parentID?: string;
  readonly selector?: string[];
  readonly x509SVIDTTL?: number;
  readonly jwtSVIDTTL?: number;
  readonly dns?: string[];
  readonly federatesWith?: string[];
  readonly admin?: boolean;
  readonly downstream?: boolean;
  readonly hint?: string;
  readonly entryExpiry?: number;
  readonly node?: boolean;
  readonly data?: string;
}

/** Adds SPIRE's flags for the fields of an entry (create and update). */
export function addEntryFieldOptions(command: Command): Command {
  return command
    .option('--spiffeID <id>', 'the SPIFFE ID that this entry grants')
    .option('--parentID <id>', "the SPIFFE ID of this entry's parent (an agent or a node alias)")
    .option('--selector <type:value>', 'a selector, e.g. unix:uid:1000; repeat for several (all must match)', collect)
    .option('--x509SVIDTTL <seconds>', "lifetime of X509-SVIDs, in seconds or as 1h (default: the server's)", parseTtl)
    .option('--jwtSVIDTTL <seconds>', "lifetime of JWT-SVIDs, in seconds or as 5m (default: the server's)", parseTtl)
    .option('--dns <name>', 'a DNS name for the X509-SVID; repeat for several (the first is also the CN)', collect)
    .option('--federatesWith <td>', 'a trust domain whose bundle workloads receive; repeat for several', collect)
    .option('--admin', 'the workload may call the admin API')
    .option('--downstream', 'the workload is a downstream server that may mint SVIDs')
    .option('--hint <hint>', 'a hint for workloads that receive several SVIDs (at most 1024 bytes)')
    .option(
      '--entryExpiry <epoch-seconds>',
      'when the entry stops being valid, as Unix seconds',
      parseNonNegativeInteger,
    )
    .option('--node', 'a node alias entry: its parent is the server, and it matches agents by node selectors')
    .addOption(new Option('--data <file>', 'entries as SPIRE-style JSON ({"entries": [...]}); - reads standard input'));
}

/** `spiffe://<td>/spire/server` for the trust domain of `spiffeId`. */
function serverIdFor(spiffeId: string): string {
  const match = /^spiffe:\/\/([^/]+)/.exec(spiffeId);
  if (match === null) throw new CliError(`-spiffeID ${JSON.stringify(spiffeId)} is not a SPIFFE ID`);
  return `spiffe://${match[1]}/spire/server`;
}

/** The entry the flags describe. */
export function entryFromFlags(flags: EntryFlags, options: { id?: string } = {}): Entry {
  if (flags.spiffeID === undefined) throw new CliError('-spiffeID is required');
  if (flags.node === true && flags.parentID !== undefined) throw new CliError('-parentID and -node cannot both be set');
  if (flags.node !== true && flags.parentID === undefined)
    throw new CliError('-parentID is required unless -node is set');
  const selectors = (flags.selector ?? []).map(parseSelector);
  if (selectors.length === 0) throw new CliError('at least one -selector is required');
  return create(EntrySchema, {
    id: options.id ?? '',
    spiffeId: flags.spiffeID,
    parentId: flags.node === true ? serverIdFor(flags.spiffeID) : (flags.parentID as string),
    selectors,
    x509SvidTtl: flags.x509SVIDTTL ?? 0,
    jwtSvidTtl: flags.jwtSVIDTTL ?? 0,
    dnsNames: flags.dns ?? [],
    federatesWith: flags.federatesWith ?? [],
    admin: flags.admin ?? false,
    downstream: flags.downstream ?? false,
    hint: flags.hint ?? '',
    expiresAt: BigInt(flags.entryExpiry ?? 0),
  });
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Entry keys in -data files: proto names as SPIRE writes them, camelCase as protobuf JSON allows. */
const DATA_KEYS: Readonly<Record<string, keyof Entry | 'ttl'>> = {
  id: 'id',
  entry_id: 'id',
  spiffe_id: 'spiffeId',
  spiffeId: 'spiffeId',
  parent_id: 'parentId',
  parentId: 'parentId',
  selectors: 'selectors',
  x509_svid_ttl: 'x509SvidTtl',
  x509SvidTtl: 'x509SvidTtl',
  jwt_svid_ttl: 'jwtSvidTtl',
  jwtSvidTtl: 'jwtSvidTtl',
  ttl: 'ttl',
  dns_names: 'dnsNames',
  dnsNames: 'dnsNames',
  federates_with: 'federatesWith',
  federatesWith: 'federatesWith',
  admin: 'admin',
  downstream: 'downstream',
  hint: 'hint',
  expires_at: 'expiresAt',
  expiresAt: 'expiresAt',
  entry_expiry: 'expiresAt',
};

function fail(where: string, message: string): never {
  throw new CliError(`-data ${where}: ${message}`);
}

function str(where: string, v: Json): string {
  if (typeof v !== 'string') fail(where, 'must be a string');
  return v;
}

/** A SPIFFE ID as a string, or as SPIRE's `{"trust_domain": …, "path": …}` object. */
function spiffeIdOf(where: string, v: Json): string {
  if (typeof v === 'string') return v;
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const td = str(`${where}.trust_domain`, v['trust_domain'] ?? v['trustDomain'] ?? null);
    const path = v['path'] === undefined ? '' : str(`${where}.path`, v['path']);
    return `spiffe://${td}${path}`;
  }
  fail(where, 'must be a SPIFFE ID string or {"trust_domain", "path"}');
}

function int(where: string, v: Json): number {
  if (typeof v === 'string' && /^\d+$/.test(v)) return Number(v);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(where, 'must be a whole number of 0 or more');
  return v;
}

function strings(where: string, v: Json): string[] {
  if (!Array.isArray(v)) fail(where, 'must be a list of strings');
  return v.map((item, i) => str(`${where}[${i}]`, item));
}

function bool(where: string, v: Json): boolean {
  if (typeof v !== 'boolean') fail(where, 'must be true or false');
  return v;
}

function entryFromJson(where: string, v: Json): Entry {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(where, 'must be an object');
  const entry = create(EntrySchema, {});
  for (const [key, value] of Object.entries(v)) {
    const field = DATA_KEYS[key];
    const at = `${where}.${key}`;
    switch (field) {
      case 'id':
        entry.id = str(at, value);
        break;
      case 'spiffeId':
        entry.spiffeId = spiffeIdOf(at, value);
        break;
      case 'parentId':
        entry.parentId = spiffeIdOf(at, value);
        break;
      case 'selectors':
        if (!Array.isArray(value)) fail(at, 'must be a list of {"type", "value"}');
        entry.selectors = value.map((s, i) => {
          if (s === null || typeof s !== 'object' || Array.isArray(s)) fail(`${at}[${i}]`, 'must be {"type", "value"}');
          return create(SelectorSchema, {
            type: str(`${at}[${i}].type`, s['type'] ?? null),
            value: str(`${at}[${i}].value`, s['value'] ?? null),
          });
        });
        break;
      case 'x509SvidTtl':
      case 'ttl':
        entry.x509SvidTtl = int(at, value);
        break;
      case 'jwtSvidTtl':
        entry.jwtSvidTtl = int(at, value);
        break;
      case 'dnsNames':
        entry.dnsNames = strings(at, value);
        break;
      case 'federatesWith':
        entry.federatesWith = strings(at, value);
        break;
      case 'admin':
        entry.admin = bool(at, value);
        break;
      case 'downstream':
        entry.downstream = bool(at, value);
        break;
      case 'hint':
        entry.hint = str(at, value);
        break;
      case 'expiresAt':
        entry.expiresAt = BigInt(int(at, value));
        break;
      default:
        fail(
          at,
          `unknown key (known keys: ${[...new Set(Object.keys(DATA_KEYS).filter((k) => k.includes('_') || k === k.toLowerCase()))].join(', ')})`,
        );
    }
  }
  return entry;
}

/** The entries of a `-data` file (`{"entries": [...]}` or a bare list). */
export function entriesFromData(path: string): Entry[] {
  const text = readInputFile('data', path);
  let doc: Json;
  try {
    doc = JSON.parse(text) as Json;
  } catch (err) {
    throw new CliError(`-data ${path}: not valid JSON (${(err as Error).message})`);
  }
  const list = Array.isArray(doc) ? doc : doc !== null && typeof doc === 'object' ? doc['entries'] : undefined;
  if (!Array.isArray(list)) throw new CliError(`-data ${path}: expected {"entries": [...]}`);
  return list.map((item, i) => entryFromJson(`entries[${i}]`, item));
}
