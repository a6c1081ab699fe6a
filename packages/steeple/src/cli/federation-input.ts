/**
 * SPIRE's federation flags (`-trustDomain -bundleEndpointURL -bundleEndpointProfile
 * -endpointSpiffeID -trustDomainBundlePath -trustDomainBundleFormat`) and how a relationship prints.
 * @module
 */
import { create } from '@bufbuild/protobuf';
import { type Command, Option } from 'commander';
import { formatKeyValues } from '../common/cli/output.js';
import { type FederationRelationship, FederationRelationshipSchema } from '../gen/steeple/server/v1/trust_domain_pb.js';
import { CliError, oneOf, readInputFile } from './admin-command.js';
import { BUNDLE_FORMATS, type BundleFormat, bundleJsonFromFile } from './bundle-format.js';

const PROFILES = ['https_web', 'https_spiffe'] as const;

export interface FederationFlags {
  readonly trustDomain?: string;
  readonly bundleEndpointURL?: string;
  readonly bundleEndpointProfile?: (typeof PROFILES)[number];
  readonly endpointSpiffeID?: string;
  readonly trustDomainBundlePath?: string;
  readonly trustDomainBundleFormat: BundleFormat;
}

export function addFederationOptions(command: Command): Command {
  return command
    .option('--trustDomain <td>', 'the federated trust domain')
    .option('--bundleEndpointURL <url>', "the https URL of the trust domain's bundle endpoint")
    .addOption(
      new Option(
        '--bundleEndpointProfile <profile>',
        'how the endpoint is authenticated: https_spiffe or https_web',
      ).argParser(oneOf(PROFILES)),
    )
    .option('--endpointSpiffeID <id>', 'for https_spiffe: the SPIFFE ID the endpoint server presents')
    .option('--trustDomainBundlePath <file>', "the trust domain's current bundle (needed to start https_spiffe trust)")
    .addOption(
      new Option('--trustDomainBundleFormat <format>', 'format of -trustDomainBundlePath: pem or spiffe')
        .argParser(oneOf(BUNDLE_FORMATS))
        .default('pem'),
    );
}

/** The relationship the flags describe; every flag but the bundle is required. */
export function relationshipFromFlags(flags: FederationFlags): FederationRelationship {
  if (flags.trustDomain === undefined) throw new CliError('-trustDomain is required');
  if (flags.bundleEndpointURL === undefined) throw new CliError('-bundleEndpointURL is required');
  if (flags.bundleEndpointProfile === undefined) throw new CliError('-bundleEndpointProfile is required');
  if (flags.bundleEndpointProfile === 'https_spiffe' && flags.endpointSpiffeID === undefined) {
    throw new CliError('-endpointSpiffeID is required with -bundleEndpointProfile https_spiffe');
  }
  if (flags.bundleEndpointProfile === 'https_web' && flags.endpointSpiffeID !== undefined) {
    throw new CliError('-endpointSpiffeID applies only to -bundleEndpointProfile https_spiffe');
  }
  const td = flags.trustDomain.replace(/^spiffe:\/\//, '');
  const bundlePath = flags.trustDomainBundlePath;
  return create(FederationRelationshipSchema, {
    trustDomain: td,
    bundleEndpointUrl: flags.bundleEndpointURL,
    bundleEndpointProfile:
      flags.bundleEndpointProfile === 'https_spiffe'
        ? { case: 'httpsSpiffe', value: { endpointSpiffeId: flags.endpointSpiffeID as string } }
        : { case: 'httpsWeb', value: {} },
    ...(bundlePath !== undefined
      ? {
          trustDomainBundle: {
            trustDomain: td,
            spiffeBundleJson: bundleJsonFromFile(
              td,
              bundlePath,
              flags.trustDomainBundleFormat,
              readInputFile('trustDomainBundlePath', bundlePath),
            ),
          },
        }
      : {}),
  });
}

/** A Unix-seconds time as ISO 8601 with how long ago or ahead it is; undefined for 0 (never). */
function when(unixSeconds: bigint, now: Date): string | undefined {
  if (unixSeconds === 0n) return undefined;
  const at = new Date(Number(unixSeconds) * 1000);
  const delta = Math.round((at.getTime() - now.getTime()) / 1000);
  const span = Math.abs(delta);
  const amount =
    span < 120
      ? `${span}s`
      : span < 7200
        ? `${Math.round(span / 60)}m`
        : span < 172_800
          ? `${Math.round(span / 3600)}h`
          : `${Math.round(span / 86_400)}d`;
  const relative = delta === 0 ? 'now' : delta > 0 ? `in ${amount}` : `${amount} ago`;
  return `${at.toISOString().replace('.000Z', 'Z')} (${relative})`;
}

/** The one-line summary of how keeping the trust domain's bundle current is going. */
function statusLine(r: FederationRelationship, now: Date): string {
  const s = r.status;
  if (s === undefined) return 'unknown (this server does not report the fetch status)';
  const bundle = s.currentBundle;
  const none = `no bundle of "${r.trustDomain}" is held yet, so its SVIDs cannot be verified`;
  switch (s.state) {
    case 'ok':
      return `ok: bundle (sequence ${bundle?.sequence ?? '?'}) refreshed at ${when(s.lastSuccessAt, now) ?? '?'}`;
    case 'failing': {
      const e = s.lastError;
      const since = when(s.failingSince, now) ?? when(e?.at ?? 0n, now) ?? '?';
      const why = e === undefined ? '' : ` (${e.reason}: ${e.message})`;
      const kept =
        bundle === undefined
          ? none
          : s.lastSuccessAt !== 0n
            ? `serving the last good bundle (sequence ${bundle.sequence}) fetched at ${when(s.lastSuccessAt, now)}`
            : `serving the last good bundle (sequence ${bundle.sequence}) stored at ${when(bundle.storedAt, now)}`;
      return `failing since ${since}${why}; ${kept}`;
    }
    case 'not-yet-fetched':
      return `not yet fetched; ${
        bundle === undefined
          ? none
          : `serving the bundle (sequence ${bundle.sequence}) stored at ${when(bundle.storedAt, now)}`
      }`;
    default:
      return s.state;
  }
}

/**
 * A relationship as `federation show` and `list` print it: where it is defined, the endpoint,
 * and its status (state, the bundle in force, last success, attempt and error, next refresh).
 */
export function formatRelationship(r: FederationRelationship, now: Date = new Date()): string {
  const profile = r.bundleEndpointProfile;
  const s = r.status;
  const bundle = s?.currentBundle;
  const e = s?.lastError;
  const source =
    r.source === 'config'
      ? 'config file (federation.federates_with; read only through the API)'
      : r.source === 'datastore'
        ? 'API (stored in the datastore)'
        : r.source === ''
          ? undefined
          : r.source;
  return formatKeyValues([
    ['Trust domain', r.trustDomain],
    ['Defined in', source],
    ['Bundle endpoint URL', r.bundleEndpointUrl],
    ['Bundle endpoint profile', profile.case === 'httpsSpiffe' ? 'https_spiffe' : 'https_web'],
    ['Endpoint SPIFFE ID', profile.case === 'httpsSpiffe' ? profile.value.endpointSpiffeId : undefined],
    ['Status', statusLine(r, now)],
    ['Bundle sequence', r.trustDomainBundle ? r.trustDomainBundle.sequence.toString() : 'no bundle yet'],
    [
      'Bundle refresh hint',
      bundle === undefined
        ? undefined
        : bundle.refreshHintSeconds === 0n
          ? 'none (the default applies)'
          : `${bundle.refreshHintSeconds}s`,
    ],
    ['Bundle stored at', bundle === undefined ? undefined : when(bundle.storedAt, now)],
    ['Last success', s === undefined ? undefined : (when(s.lastSuccessAt, now) ?? 'none since the server started')],
    ['Last attempt', s === undefined ? undefined : (when(s.lastAttemptAt, now) ?? 'none yet')],
    ['Last bundle change', s === undefined ? undefined : when(s.lastChangeAt, now)],
    ['Consecutive failures', s !== undefined && s.consecutiveFailures > 0 ? s.consecutiveFailures : undefined],
    [
      'Last error',
      e === undefined
        ? undefined
        : `${when(e.at, now)}: ${e.reason}${e.code === '' ? '' : ` (${e.code})`}: ${e.message}${
            s?.state === 'ok' ? ' (recovered since)' : ''
          }`,
    ],
    [
      'Next refresh',
      s === undefined
        ? undefined
        : `${when(s.nextRefreshAt, now) ?? 'not scheduled'}${
            s.refreshIntervalSeconds > 0 ? `, then every ${s.refreshIntervalSeconds}s` : ''
          }`,
    ],
  ]);
}
