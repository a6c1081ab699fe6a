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

export function formatRelationship(r: FederationRelationship): string {
  const profile = r.bundleEndpointProfile;
  return formatKeyValues([
    ['Trust domain', r.trustDomain],
    ['Bundle endpoint URL', r.bundleEndpointUrl],
    ['Bundle endpoint profile', profile.case === 'httpsSpiffe' ? 'https_spiffe' : 'https_web'],
    ['Endpoint SPIFFE ID', profile.case === 'httpsSpiffe' ? profile.value.endpointSpiffeId : undefined],
    ['Bundle sequence', r.trustDomainBundle ? r.trustDomainBundle.sequence.toString() : 'no bundle yet'],
  ]);
}
